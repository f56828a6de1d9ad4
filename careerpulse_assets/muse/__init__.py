"""Where postings come from: the Muse API over HTTP, or a folder of saved pages."""
