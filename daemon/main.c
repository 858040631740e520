/* placeholder until the daemon runtime lands */
int main(void)
{
        return 1;
}
