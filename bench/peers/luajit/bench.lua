-- LuaJIT calling plusone in libplusone.so through its FFI, the talk's loop.
-- Usage: luajit bench.lua <libplusone.so> <count>
local ffi = require("ffi")
ffi.cdef[[
int plusone(int x);
typedef struct { long tv_sec; long tv_nsec; } timespec;
int clock_gettime(int clk, timespec *ts);
]]
local lib = ffi.load(arg[1])
local count = tonumber(arg[2])
local ts = ffi.new("timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end
local t = now()
local x = 0
while x < count do x = lib.plusone(x) end
print(string.format("luajit_ns=%.3f", (now() - t) / count))
