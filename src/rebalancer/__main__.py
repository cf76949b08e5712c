from rebalancer.cli.app import main

main()
