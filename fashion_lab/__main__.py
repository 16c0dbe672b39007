"""`python -m fashion_lab` trains (same as the `fashion-lab` command)."""

from fashion_lab.train import main

if __name__ == "__main__":
    main()
