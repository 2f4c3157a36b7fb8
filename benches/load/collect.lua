-- wrk script: POST /collect with realistic 50-event JSON batches; every session sends ten
-- batches (seq 0..9), as a visitor reading a page for a few minutes would. No batch repeats,
-- so every request is a real write.
local counter = 0
local start_time = os.time()
local thread_id = 0
local now = os.time() * 1000

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

local function events()
  local e = {}
  e[1] = string.format('{"k":"view","t":%d,"url":"https://shop.example/products/42?utm_source=mail&ref=abc","ref":"https://news.example/a","vw":1280,"vh":720,"dw":1280,"dh":5400,"load_ms":812.5,"ttfb_ms":95}', now)
  for i = 2, 50 do
    local t = now + i * 40
    local m = i % 10
    if m == 0 then
      e[i] = string.format('{"k":"click","t":%d,"x":%d,"y":900,"sel":"main > div.grid > a.card:nth-child(3)","ex":512,"ey":300}', t, 400 + i)
    elseif m == 1 then
      e[i] = string.format('{"k":"scroll","t":%d,"y":%d}', t, i * 12)
    elseif m == 2 then
      e[i] = string.format('{"k":"input","t":%d,"sel":"form#signup input[name=email]","len":14}', t)
    else
      e[i] = string.format('{"k":"move","t":%d,"x":%d,"y":%d}', t, 300 + i * 3, 500 + i * 2)
    end
  end
  return table.concat(e, ",")
end

local body_events = events()
local prefix = '{"v":1,"site":"demo","vid":"0123456789abcdef0123456789abcdef","sid":"'
local middle = '","seq":'
local suffix = ',"sent":' .. (now + 2100) .. ',"events":[' .. body_events .. ']}'
local batches_per_session = 10

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

function request()
  counter = counter + 1
  local session = math.floor(counter / batches_per_session)
  local seq = counter % batches_per_session
  local sid = string.format("%08x%08x%016x", tid or 0, start_time % 0xffffffff, session)
  return wrk.format(nil, "/collect", nil, prefix .. sid .. middle .. seq .. suffix)
end

function done(summary, latency, requests)
  local codes = {}
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
