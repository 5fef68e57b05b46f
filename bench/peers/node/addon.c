/* A Node-API addon exposing plusone from libplusone.so to JavaScript. */
#include <node_api.h>

int plusone(int x);

static napi_value js_plusone(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value arg, out;
    int32_t x = 0;
    napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
    napi_get_value_int32(env, arg, &x);
    napi_create_int32(env, plusone(x), &out);
    return out;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    napi_create_function(env, "plusone", NAPI_AUTO_LENGTH, js_plusone, NULL, &fn);
    napi_set_named_property(env, exports, "plusone", fn);
    return exports;
}
