-- Nexmark q22 (string functions): the first three directories of each bid's URL.
-- Nexmark's SPLIT_INDEX(url, '/', 3..5) counts from 0; split_part counts from 1, so 4..6.
-- For https://www.nexmark.com/google/item.htm?query=1 that is 'google', 'item.htm?query=1', ''.
SELECT
    auction, bidder, price, channel,
    split_part(url, '/', 4) AS dir1,
    split_part(url, '/', 5) AS dir2,
    split_part(url, '/', 6) AS dir3
FROM bids
