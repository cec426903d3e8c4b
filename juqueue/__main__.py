from juqueue.cli import main

main()
