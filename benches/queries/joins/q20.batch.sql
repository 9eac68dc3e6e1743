SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.date_time, A.item_name,
       A.description, A.initial_bid, A.reserve, A.date_time AS auction_time, A.expires,
       A.seller, A.category
FROM bid AS B JOIN auction AS A ON B.auction = A.id
WHERE A.category = 10
