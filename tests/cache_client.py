"""A client process for cache tests: sends numbered chat requests through a Bridge with a cache file.

python tests/cache_client.py DB BASE_URL MODEL FIRST COUNT CONCURRENCY
Prints `seen N` as each response reaches its caller (who sees it only once it is stored), then one JSON line of
bridge stats at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys

from cotbridge import Bridge


async def main(db: str, base_url: str, model: str, first: int, count: int, concurrency: int) -> None:
    async with Bridge(cache=db, max_concurrency=concurrency) as bridge:
        m = bridge.model(f"openai-compatible/{model}", base_url=base_url)

        async def ask(i: int) -> None:
            await m.chat([{"role": "user", "content": f"question {i}"}])
            print(f"seen {i}", flush=True)

        await asyncio.gather(*(ask(i) for i in range(first, first + count)))
        print(json.dumps(bridge.stats.as_dict()), flush=True)


if __name__ == "__main__":
    db, base_url, model, first, count, concurrency = sys.argv[1:7]
    asyncio.run(main(db, base_url, model, int(first), int(count), int(concurrency)))
