//! Registering functions: a scalar UDF (`net_price`) and an aggregate UDF from DataFusion's
//! `create_udaf` (`geo_mean`, whose state — a sum of logarithms and a count — merges, so the
//! streaming aggregation keeps it between micro-batches).
//!
//! `cargo run -p weir --example udf`

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Accumulator, ColumnarValue, Volatility, create_udaf, create_udf};
use datafusion::scalar::ScalarValue;
use weir::Engine;

/// `net_price(price)`: the price without 20 % tax, in whole cents.
fn net_price(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let prices = ColumnarValue::values_to_arrays(args)?;
    let prices = as_float64_array(&prices[0])?;
    let net: Int64Array = prices
        .iter()
        .map(|p| p.map(|p| (p / 1.2 * 100.0).round() as i64))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(net)))
}

/// The geometric mean: state is (sum of ln(x), count).
#[derive(Debug, Default)]
struct GeoMean {
    log_sum: f64,
    count: u64,
}

impl Accumulator for GeoMean {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for value in as_float64_array(&values[0])?.iter().flatten() {
            self.log_sum += value.ln();
            self.count += 1;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let sums = as_float64_array(&states[0])?;
        let counts = states[1]
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("count state".into()))?;
        for (sum, count) in sums.iter().zip(counts.iter()) {
            self.log_sum += sum.unwrap_or(0.0);
            self.count += count.unwrap_or(0);
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.log_sum)),
            ScalarValue::UInt64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.count > 0).then(|| (self.log_sum / self.count as f64).exp()),
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::builder().build()?;
    engine.register_udf(create_udf(
        "net_price",
        vec![DataType::Float64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(net_price),
    ));
    engine.register_udaf(create_udaf(
        "geo_mean",
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(GeoMean::default()))),
        Arc::new(vec![DataType::Float64, DataType::UInt64]),
    ));
    engine
        .execute("CREATE SOURCE sales (shop VARCHAR, price DOUBLE) WITH (connector = 'memory', max_records_per_trigger = '2')")
        .await?;
    engine
        .execute("INSERT INTO sales VALUES ('a', 12.0), ('a', 3.0), ('b', 6.0), ('a', 1.2)")
        .await?;
    let query = engine
        .start(
            "CREATE SINK per_shop WITH (connector = 'memory', output_mode = 'complete', trigger = 'available-now') AS \
             SELECT shop, geo_mean(price) AS geo_mean, sum(net_price(price)) AS net_cents FROM sales GROUP BY shop",
        )
        .await?;
    query.await_termination().await?;
    let rows = engine.sql("SELECT * FROM per_shop ORDER BY shop").await?;
    let table = arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
    println!("{table}");
    // geo_mean(12, 3, 1.2) = 3.5088…; the two micro-batches merged their states.
    let geo: &Float64Array = rows[0]
        .column(1)
        .as_any()
        .downcast_ref()
        .ok_or("geo_mean")?;
    assert!((geo.value(0) - (12.0f64 * 3.0 * 1.2).cbrt()).abs() < 1e-9);
    Ok(())
}
