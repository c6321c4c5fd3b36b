from ebmkit.cli import main

main()
