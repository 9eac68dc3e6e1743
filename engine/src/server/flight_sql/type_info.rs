//! `GetXdbcTypeInfo`: the SQL types Weir's `CREATE SOURCE` and `CAST` take, as JDBC's
//! `getTypeInfo` and ODBC's `SQLGetTypeInfo` list them, each under its xDBC type code. The
//! names are DataFusion's SQL names; the sizes are those of the Arrow types they map to.

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType, XdbcDatetimeSubcode};

use crate::error::WeirError;

/// One type: its name, xDBC code, column size (digits or characters; None: unbounded) and
/// radix (10 for exact, 2 for binary floating point, None for other types).
struct WeirType {
    name: &'static str,
    code: XdbcDataType,
    size: Option<i32>,
    radix: Option<i32>,
}

const fn weir_type(
    name: &'static str,
    code: XdbcDataType,
    size: Option<i32>,
    radix: Option<i32>,
) -> WeirType {
    WeirType {
        name,
        code,
        size,
        radix,
    }
}

const TYPES: [WeirType; 14] = [
    weir_type("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None),
    weir_type("TINYINT", XdbcDataType::XdbcTinyint, Some(3), Some(10)),
    weir_type("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), Some(10)),
    weir_type("INT", XdbcDataType::XdbcInteger, Some(10), Some(10)),
    weir_type("BIGINT", XdbcDataType::XdbcBigint, Some(19), Some(10)),
    weir_type("REAL", XdbcDataType::XdbcReal, Some(24), Some(2)),
    weir_type("DOUBLE", XdbcDataType::XdbcDouble, Some(53), Some(2)),
    weir_type("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), Some(10)),
    weir_type("VARCHAR", XdbcDataType::XdbcVarchar, None, None),
    weir_type("BYTEA", XdbcDataType::XdbcVarbinary, None, None),
    weir_type("DATE", XdbcDataType::XdbcDate, Some(10), None),
    weir_type("TIME", XdbcDataType::XdbcTime, Some(18), None),
    weir_type("TIMESTAMP", XdbcDataType::XdbcTimestamp, Some(29), None),
    weir_type("INTERVAL", XdbcDataType::XdbcInterval, None, None),
];

/// The answer to every `GetXdbcTypeInfo`, built once.
pub(super) fn weir_types() -> crate::error::Result<XdbcTypeInfoData> {
    let mut builder = XdbcTypeInfoDataBuilder::new();
    for t in TYPES {
        let text = matches!(t.code, XdbcDataType::XdbcVarchar);
        let temporal = matches!(
            t.code,
            XdbcDataType::XdbcDate | XdbcDataType::XdbcTime | XdbcDataType::XdbcTimestamp
        );
        builder.append(XdbcTypeInfo {
            type_name: t.name.to_string(),
            data_type: t.code,
            column_size: t.size,
            literal_prefix: (text || temporal).then(|| "'".to_string()),
            literal_suffix: (text || temporal).then(|| "'".to_string()),
            create_params: matches!(t.code, XdbcDataType::XdbcDecimal)
                .then(|| vec!["precision".to_string(), "scale".to_string()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive: text,
            searchable: if text {
                Searchable::Full
            } else {
                Searchable::Basic
            },
            unsigned_attribute: t.radix.map(|_| false),
            fixed_prec_scale: false,
            auto_increment: None,
            local_type_name: Some(t.name.to_string()),
            minimum_scale: matches!(t.code, XdbcDataType::XdbcDecimal).then_some(0),
            maximum_scale: matches!(t.code, XdbcDataType::XdbcDecimal).then_some(38),
            sql_data_type: if temporal {
                XdbcDataType::XdbcDatetime
            } else {
                t.code
            },
            datetime_subcode: match t.code {
                XdbcDataType::XdbcDate => Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
                XdbcDataType::XdbcTime => Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
                XdbcDataType::XdbcTimestamp => Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
                _ => None,
            },
            num_prec_radix: t.radix,
            interval_precision: None,
        });
    }
    builder
        .build()
        .map_err(|e| WeirError::Internal(format!("Flight SQL type info: {e}")))
}
