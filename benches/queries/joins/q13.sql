-- Nexmark q13 (bounded side input join): each bid with the value of its auction's key in a
-- static side table (a stream-static join: the table is read when the query starts).
SELECT B.auction, B.bidder, B.price, B.date_time, S.value
FROM bid AS B JOIN side_input AS S ON B.auction % 10000 = S.key
