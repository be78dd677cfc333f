/* The OpenAPI document of the API (docs/openapi.json), embedded so that GET /openapi.json needs
 * no file beside the binary and always describes the binary it comes with. */
    .section .rodata
    .globl lel_openapi_json, lel_openapi_json_end
lel_openapi_json:
    .incbin "openapi.json"
lel_openapi_json_end:
    .byte 0
    .section .note.GNU-stack, "", @progbits
