"""What can go wrong processing a DID: bad input (permanent) or an outage (retry later)."""


class ProcessingError(RuntimeError):
    """A DID cannot be processed as asked; the message is one line naming the DID and the rule it broke."""


class Unavailable(ProcessingError):
    """Rucio or a storage cannot be reached now; retrying later may succeed."""
