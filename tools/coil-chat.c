/* placeholder: being written */
#include <stdio.h>

int main(void)
{
    fputs("coil-chat: not built yet\n", stderr);
    return 1;
}
