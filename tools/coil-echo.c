/* placeholder: being written */
#include <stdio.h>

int main(void)
{
    fputs("coil-echo: not built yet\n", stderr);
    return 1;
}
