/* The talk's baseline loop, compiled (-O2, by the same C compiler) into
 * ffibench itself, so that every Rust peer can time it beside its own rows
 * in one process: `plusone` lives in libplusone.so, so each call goes
 * through this executable's PLT, as in bench.c. ffibench pairs each row
 * with this loop in alternating slices and reports the ratio per run,
 * which the host's drift between processes does not move. */
int plusone(int x);

int ffibench_c_plt_loop(int count) {
    int x = 0;
    while (x < count) x = plusone(x);
    return x;
}
