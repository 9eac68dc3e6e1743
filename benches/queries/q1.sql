-- Nexmark q1, currency conversion: bid prices from dollars to euros (1 USD = 0.908 EUR).
-- One arithmetic projection per row; the result column is DOUBLE.
SELECT auction, bidder, 0.908 * price AS price, date_time, extra
FROM bids
