-- wrk script for bench/run_http_bench.sh: one machine-readable line at the
-- end of a run (wrk's own report stays on stdout above it):
--   RESULT requests=N duration_us=N bytes=N errors=N non2xx=N p50_us=N p99_us=N
-- `errors` sums connect, read, write and timeout errors; `non2xx` is wrk's
-- status count (responses with a status >= 400 ... as wrk counts them).
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d bytes=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect + e.read + e.write + e.timeout, e.status,
        latency:percentile(50), latency:percentile(99)))
end
