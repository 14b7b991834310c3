-- wrk script: each request asks for a random 64 KiB range of a file of
-- SIZE bytes (environment variable, default 1 GiB).
local size = tonumber(os.getenv("SIZE") or "1073741824")
local span = 65536

request = function()
  local start = math.random(0, size - span)
  local headers = { ["Range"] = string.format("bytes=%d-%d", start, start + span - 1) }
  return wrk.format("GET", nil, headers)
end

-- Count anything but 206 as an error, so a broken server cannot look fast.
response = function(status, headers, body)
  if status ~= 206 then
    wrk.thread:stop()
  end
end
