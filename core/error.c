/* Error names and messages, from the one table in coil/error.h. */
#include <coil/error.h>

const char *coil_err_name(int code)
{
    switch (code) {
    case COIL_OK:
        return "COIL_OK";
#define COIL__NAME_CASE(name, value, msg) \
    case COIL_##name:                     \
        return "COIL_" #name;
        COIL_ERROR_MAP(COIL__NAME_CASE)
#undef COIL__NAME_CASE
    default:
        return "COIL_UNKNOWN";
    }
}

const char *coil_strerror(int code)
{
    switch (code) {
    case COIL_OK:
        return "success";
#define COIL__MSG_CASE(name, value, msg) \
    case COIL_##name:                    \
        return msg;
        COIL_ERROR_MAP(COIL__MSG_CASE)
#undef COIL__MSG_CASE
    default:
        return "unknown coil error code";
    }
}
