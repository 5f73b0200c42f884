from inferforge.cli import main

main()
