// Preload (node -r) for the profiling drivers: counts socket writes (net.Socket#_write and
// #_writev calls) of this process, read by write-host.mjs as globalThis.__socketWrites.
const net = require("node:net");
globalThis.__socketWrites = 0;
for (const m of ["_write", "_writev"]) {
  const orig = net.Socket.prototype[m];
  net.Socket.prototype[m] = function (...args) {
    globalThis.__socketWrites++;
    return orig.apply(this, args);
  };
}
