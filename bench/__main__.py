import sys

if sys.argv[1:2] == ["resume"]:
    from bench.resume import main

    main(sys.argv[2:])
else:
    from bench.run import main

    main()
