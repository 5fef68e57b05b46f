/* The JNI glue for PlusOne.java: forwards to plusone in libplusone.so. */
#include <jni.h>

int plusone(int x);

JNIEXPORT jint JNICALL Java_PlusOne_plusone(JNIEnv *env, jclass cls, jint x) {
    (void)env;
    (void)cls;
    return plusone(x);
}
