#!/bin/sh
# Throwaway test certificates for coil's TLS tests, made fresh by the test
# setup (never checked in): ECDSA P-256, valid two days.
#   ca.pem/.key           the test CA
#   server.pem/.key       CN=localhost, SAN localhost, 127.0.0.1, ::1
#   server-chain.pem      server.pem + ca.pem
#   server-enc.key        server.key under the passphrase "coil-test-pass"
#   other.pem/.key        CN=other.test (SNI)
#   wronghost.pem/.key    CN=wrong.example only
#   expired.pem/.key      CN=localhost, expired in 2020
#   client.pem/.key       CN=coil test client (clientAuth)
# Usage: make-certs.sh DIR
set -eu
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
command -v openssl >/dev/null 2>&1 || {
    echo "make-certs.sh: the openssl command is missing: install the Debian package 'openssl' (tools/install-deps)" >&2
    exit 1
}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=coil test CA" \
    -addext "basicConstraints=critical,CA:true" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# leaf NAME CN SAN EKU
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf 'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n' \
        "$4" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr"
}

leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
leaf other other.test "subjectAltName=DNS:other.test" serverAuth
leaf wronghost wrong.example "subjectAltName=DNS:wrong.example" serverAuth
leaf client "coil test client" "" clientAuth
cat server.pem ca.pem > server-chain.pem
openssl pkey -in server.key -aes256 -passout pass:coil-test-pass -out server-enc.key 2>/dev/null

# Expired: signed by the CA with dates in the past (openssl ca can set them).
key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/CN=localhost" 2>/dev/null
rm -rf ca-db && mkdir ca-db && : > ca-db/index.txt && echo 01 > ca-db/serial
cat > ca-db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca-db
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = CA:false
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
CNF
openssl ca -batch -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
    -out expired.pem -notext -startdate 20200101000000Z -enddate 20200102000000Z \
    >/dev/null 2>&1
rm -rf ca-db expired.csr ./*.ext

for c in server other wronghost client; do
    openssl verify -CAfile ca.pem "$c.pem" >/dev/null 2>&1 || {
        echo "make-certs.sh: $dir/$c.pem does not verify against ca.pem" >&2
        exit 1
    }
done
if openssl verify -CAfile ca.pem expired.pem >/dev/null 2>&1; then
    echo "make-certs.sh: $dir/expired.pem is not expired" >&2
    exit 1
fi
