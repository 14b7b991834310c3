-- wrk script: each request asks for a random 64 KiB range of a file of
-- SIZE bytes (environment variable, default 1 GiB). Request-only on
-- purpose: a response() callback makes wrk parse every response, which
-- costs it more CPU per request than a fast server spends and pulls the
-- servers' ratio toward 1. bench/ranges.sh checks the answers instead: one
-- range by curl first, then wrk's non-2xx count and bytes per request.
local size = tonumber(os.getenv("SIZE") or "1073741824")
local span = 65536

request = function()
  local start = math.random(0, size - span)
  local headers = { ["Range"] = string.format("bytes=%d-%d", start, start + span - 1) }
  return wrk.format("GET", nil, headers)
end
