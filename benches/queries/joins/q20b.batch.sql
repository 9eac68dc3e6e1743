SELECT B.auction, B.bidder, B.price, B.date_time, A.item_name, A.seller, A.category
FROM bid AS B JOIN auction AS A ON B.auction = A.id
  AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '20' SECOND
WHERE A.category = 10
