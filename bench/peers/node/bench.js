// Node.js calling plusone in libplusone.so through a Node-API addon
// (addon.c), the talk's loop, twice (JIT warm-up).
// Usage: node bench.js <plusone.node> <count>
const addon = require(process.argv[2]);
const count = parseInt(process.argv[3], 10);
let ns = 0;
for (let run = 0; run < 2; run++) {
  const t = process.hrtime.bigint();
  let x = 0;
  while (x < count) x = addon.plusone(x);
  ns = Number(process.hrtime.bigint() - t) / count;
}
console.log(`node_napi_ns=${ns.toFixed(3)}`);
