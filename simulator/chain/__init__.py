"""Everything that talks to the contracts: deployment through Ape, batched JSON-RPC for the hot loop."""
