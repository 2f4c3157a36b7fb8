-- wrk script: POST /collect with the realistic batch written by `ceiling bodies` (see
-- benches/ceiling.rs). Every session sends ten batches (seq 0..9) and no (sid, seq) repeats, so
-- every request is a real durable write.
--
--   LOAD_BODIES=FILE  the file from `ceiling bodies`
--   LOAD_MODE=json          the JSON template, a fresh (sid, seq) spliced in per request
--   LOAD_MODE=msgpack-gzip  the pre-encoded MessagePack+gzip bodies, each sent once
local mode = os.getenv("LOAD_MODE") or "json"
local path = os.getenv("LOAD_BODIES") or error("LOAD_BODIES is not set")
local ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
  for _, t in ipairs(threads) do t:set("nthreads", #threads) end
end

local counter, repeats = 0, 0
local run = os.time() % 0xffffff
local part1, part2, part3, sid_first -- JSON template pieces around the placeholders
local pool, pool_n = {}, 0        -- MessagePack+gzip bodies of this thread

function init(args)
  local f = assert(io.open(path, "rb"))
  local kind, len = f:read("*l"):match("^(%a+) (%d+)$")
  assert(kind == "json", "unexpected bodies file")
  local template = f:read(tonumber(len))
  f:read("*l")
  -- Split around the two placeholders, in whichever order they appear.
  local s = template:find('"5555555555555555555555555555555f"', 1, true)
  local q = template:find("4242424242", 1, true)
  sid_first = s < q
  local a, b = math.min(s, q), math.max(s, q)
  local alen = sid_first and 34 or 10
  local blen = sid_first and 10 or 34
  part1 = template:sub(1, a - 1)
  part2 = template:sub(a + alen, b - 1)
  part3 = template:sub(b + blen)
  if mode == "msgpack-gzip" then
    local i = 0
    while true do
      local line = f:read("*l")
      if not line then break end
      local body = f:read(tonumber(line))
      if i % nthreads == tid - 1 then
        pool_n = pool_n + 1
        pool[pool_n] = body
      end
      i = i + 1
    end
    assert(pool_n > 0, "no MessagePack bodies in " .. path)
    wrk.headers["Content-Type"] = "application/msgpack"
    wrk.headers["Content-Encoding"] = "gzip"
  else
    wrk.headers["Content-Type"] = "application/json"
  end
  f:close()
  wrk.method = "POST"
  wrk.headers["User-Agent"] = ua
end

function request()
  counter = counter + 1
  if mode == "msgpack-gzip" then
    if counter > pool_n then repeats = repeats + 1 end
    return wrk.format(nil, "/collect", nil, pool[(counter - 1) % pool_n + 1])
  end
  local sid = string.format('"%02x%06x%024x"', tid, run, math.floor(counter / 10))
  local seq = tostring(counter % 10)
  if sid_first then
    return wrk.format(nil, "/collect", nil, part1 .. sid .. part2 .. seq .. part3)
  end
  return wrk.format(nil, "/collect", nil, part1 .. seq .. part2 .. sid .. part3)
end

function done(summary, latency, requests)
  local r = 0
  for _, t in ipairs(threads) do r = r + (t:get("repeats") or 0) end
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
  io.write(string.format("repeats: %d\n", r))
end
