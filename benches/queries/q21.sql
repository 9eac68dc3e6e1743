-- Nexmark q21 (string functions): a numeric channel id for every bid, from the channel name
-- for the four known channels and from the `channel_id` URL parameter for the others.
-- DataFusion has no REGEXP_EXTRACT; `regexp_match(...)` returns the capture groups as a list
-- (1-based) and `array_element(..., 2)` takes group 2, which is what
-- REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) returns.
SELECT
    auction, bidder, price, channel,
    CASE
        WHEN lower(channel) = 'apple' THEN '0'
        WHEN lower(channel) = 'google' THEN '1'
        WHEN lower(channel) = 'facebook' THEN '2'
        WHEN lower(channel) = 'baidu' THEN '3'
        ELSE array_element(regexp_match(url, '(&|^)channel_id=([^&]*)'), 2)
    END AS channel_id
FROM bids
WHERE array_element(regexp_match(url, '(&|^)channel_id=([^&]*)'), 2) IS NOT NULL
   OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')
