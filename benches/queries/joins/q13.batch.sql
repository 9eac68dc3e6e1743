SELECT B.auction, B.bidder, B.price, B.date_time, S.value
FROM bid AS B JOIN side_input AS S ON B.auction % 10000 = S.key
