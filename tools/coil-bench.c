/* placeholder: being written */
#include <stdio.h>

int main(void)
{
    fputs("coil-bench: not built yet\n", stderr);
    return 1;
}
