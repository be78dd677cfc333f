# Writes the bytes of IN as a C array NAME (default `lel_guest_image`) and NAME_size into OUT.
if(NOT NAME)
  set(NAME lel_guest_image)
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n#include <stddef.h>\nconst unsigned char ${NAME}[] = {${body}};\nconst size_t ${NAME}_size = ${size};\n")
