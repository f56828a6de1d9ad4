"""Where postings come from and how they are kept: the Muse API client and the archive reader,
listings, crawls and their partitions, the bronze store and the silver merge, posting
validation, and the clock (the API's when this machine's is wrong)."""
