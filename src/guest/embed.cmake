# Writes the bytes of IN as a C array `lel_guest_image` into OUT.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n#include <stddef.h>\nconst unsigned char lel_guest_image[] = {${body}};\nconst size_t lel_guest_image_size = ${size};\n")
