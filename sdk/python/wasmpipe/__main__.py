from wasmpipe.build import main
import sys

sys.exit(main())
