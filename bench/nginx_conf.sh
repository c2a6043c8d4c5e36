#!/bin/sh
# Write the nginx configuration of bench/nginx.conf.in for a scratch folder
# (used by bench/run_http_bench.sh and tests/http/test_http_agent_interop.c):
#
#   sh bench/nginx_conf.sh DIR PORT ROOT [ACCESS_LOG]
#
# writes DIR/nginx.conf (ACCESS_LOG: "off" by default, or "PATH conn"), then
# start nginx with: nginx -p DIR -c DIR/nginx.conf -e DIR/error.log
set -eu
[ $# -ge 3 ] || { echo "usage: nginx_conf.sh DIR PORT ROOT [ACCESS_LOG]" >&2; exit 2; }
dir=$1 port=$2 root=$3 access=${4:-off}
here=$(cd "$(dirname "$0")" && pwd)
user=
if [ "$(id -u)" = 0 ]; then
    user="user $(id -un) $(id -gn);"
fi
# '|' never appears in the values we are given (paths from mktemp, a number).
for v in "$dir" "$root" "$access"; do
    case $v in *'|'* | *'
'*) echo "nginx_conf.sh: '|' or a newline in '$v'" >&2; exit 2 ;; esac
done
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$root|g" \
    -e "s|@ACCESS_LOG@|$access|g" -e "s|@USER@|$user|g" \
    "$here/nginx.conf.in" >"$dir/nginx.conf"
