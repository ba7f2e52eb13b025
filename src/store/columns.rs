//! How the domain's closed sets are stored: as their snake_case names in TEXT columns (SQLite
//! and PostgreSQL alike). A value
//! the code does not know is a decode error naming it, never mistaken for a real state (a
//! corrupt row fails loudly instead of turning into `failed`).

use crate::request::{Kind, State};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

macro_rules! text_column {
    ($t:ty, $what:literal) => {
        impl Type<Sqlite> for $t {
            fn type_info() -> SqliteTypeInfo {
                <&str as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <&str as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<SqliteArgumentValue<'q>>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Sqlite>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $t {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {} `{text}` in the database", $what).into())
            }
        }

        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $t {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'_, Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Postgres>>::decode(value)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {} `{text}` in the database", $what).into())
            }
        }
    };
}

text_column!(State, "request state");
text_column!(Kind, "request kind");

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    #[tokio::test]
    async fn states_round_trip_and_an_unknown_one_is_an_error() {
        let pool = SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap();
        for state in State::ALL {
            let back: State = sqlx::query_scalar("SELECT ?")
                .bind(state)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(back, state);
        }
        let kind: Kind = sqlx::query_scalar("SELECT 'change'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(kind, Kind::Change);
        let corrupt = sqlx::query_scalar::<_, State>("SELECT 'approvd'")
            .fetch_one(&pool)
            .await
            .unwrap_err();
        assert!(
            corrupt
                .to_string()
                .contains("unknown request state `approvd`"),
            "{corrupt}"
        );
    }
}
