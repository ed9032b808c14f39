from gasworks.cli import main

main()
