/* placeholder: being written */
#include "testutil.h"

static void placeholder(void)
{
    CU_ASSERT_TRUE(1);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(placeholder),
        {NULL, NULL},
    };
    return coil_test_add_suite("line", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
