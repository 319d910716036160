from courseinfra.entrypoints.cli import main

main()
