//! Resource quantities (`500m`, `1.5`, `64Mi`, `1e3`) read as apimachinery's
//! `resource.Quantity` reads them, exactly: a decimal mantissa and a binary, decimal or
//! exponent suffix.

/// A parsed quantity: `numerator / denominator`, with the family of its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    numerator: i128,
    denominator: i128,
    /// Written with a binary suffix (`Ki` … `Ei`).
    pub binary: bool,
    /// Written with an exponent (`1e3`).
    exponent: bool,
}

impl Quantity {
    /// `<sign><digits>[.<digits>]<suffix>`, or None when it is not a quantity (or too large
    /// to hold exactly).
    pub fn parse(text: &str) -> Option<Quantity> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        let mut numerator: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut denominator = 10i128.checked_pow(fraction.len() as u32)?;
        let scale = |n: i128, base: i128, power: u32| n.checked_mul(base.checked_pow(power)?);
        let exponent = suffix.starts_with(['e', 'E']);
        let (base, power, binary) = match suffix {
            "" => (10, 0, false),
            "Ki" => (1024, 1, true),
            "Mi" => (1024, 2, true),
            "Gi" => (1024, 3, true),
            "Ti" => (1024, 4, true),
            "Pi" => (1024, 5, true),
            "Ei" => (1024, 6, true),
            "k" => (10, 3, false),
            "M" => (10, 6, false),
            "G" => (10, 9, false),
            "T" => (10, 12, false),
            "P" => (10, 15, false),
            "E" => (10, 18, false),
            "n" | "u" | "m" => {
                let power = match suffix {
                    "n" => 9,
                    "u" => 6,
                    _ => 3,
                };
                denominator = scale(denominator, 10, power)?;
                (10, 0, false)
            }
            _ => {
                let exponent = suffix.strip_prefix(['e', 'E'])?;
                let value: i32 = exponent.parse().ok()?;
                if value < 0 {
                    denominator = scale(denominator, 10, value.unsigned_abs())?;
                    (10, 0, false)
                } else {
                    (10, value as u32, false)
                }
            }
        };
        numerator = scale(numerator, base, power)?;
        if negative {
            numerator = -numerator;
        }
        Some(Quantity {
            numerator,
            denominator,
            binary,
            exponent,
        })
    }

    /// The value rounded up to a whole number (`Quantity.Value`).
    pub fn value(&self) -> i128 {
        ceil_div(self.numerator, self.denominator)
    }

    /// The value in thousandths, rounded up (`Quantity.MilliValue`).
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.numerator.saturating_mul(1000), self.denominator)
    }

    /// The quantity as the API server writes it back (`Quantity.String`): `1.5` is
    /// `1500m`, `2048Mi` is `2Gi`, `1e3` stays `1e3`; below 1024 or fractional, a binary
    /// quantity is written in decimal.
    pub fn canonical(&self) -> String {
        let nanos = ceil_div(
            self.numerator.saturating_mul(1_000_000_000),
            self.denominator,
        );
        if nanos == 0 {
            return "0".to_string();
        }
        let whole = (nanos % 1_000_000_000 == 0).then_some(nanos / 1_000_000_000);
        if let Some(value) = whole.filter(|v| self.binary && v.abs() >= 1024) {
            let (mut mantissa, mut power) = (value, 0);
            while power < 6 && mantissa % 1024 == 0 {
                mantissa /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{mantissa}{suffix}");
        }
        // The value in nanos, with the largest exponent (a multiple of 3) that keeps the
        // mantissa whole.
        let (mut mantissa, mut exponent) = (nanos, -9);
        while exponent < 18 && mantissa % 1000 == 0 {
            mantissa /= 1000;
            exponent += 3;
        }
        let suffix = match (self.exponent, exponent) {
            (_, 0) => String::new(),
            (true, e) => format!("e{e}"),
            (false, e) => ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"][((e + 9) / 3) as usize]
                .to_string(),
        };
        format!("{mantissa}{suffix}")
    }

    /// Whether two quantities are the same amount.
    pub fn same_amount(&self, other: &Quantity) -> bool {
        self.numerator.checked_mul(other.denominator)
            == other.numerator.checked_mul(self.denominator)
    }
}

/// `numerator / denominator`, rounded up (a zero denominator counts as 1).
pub fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    let denominator = if denominator == 0 { 1 } else { denominator };
    let quotient = numerator / denominator;
    if numerator % denominator > 0 {
        quotient + 1
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn quantities_read_as_apimachinery_reads_them() {
        assert_eq!((q("500m").milli_value(), q("500m").value()), (500, 1));
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("64Mi").value(), 64 * 1024 * 1024);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("2.5e-3").milli_value(), 3, "rounded up");
        assert_eq!(q("100M").value(), 100_000_000);
        assert_eq!(q(".5Gi").value(), 512 * 1024 * 1024);
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("1n").milli_value(), 1);
        assert!(q("1Ki").binary && !q("1k").binary);
        assert!(q("1000k").same_amount(&q("1M")));
        let canonical = |text: &str| q(text).canonical();
        assert_eq!(canonical("1.5"), "1500m");
        assert_eq!(canonical("1000m"), "1");
        assert_eq!(canonical("2000"), "2k");
        assert_eq!(canonical("2048Mi"), "2Gi");
        assert_eq!(canonical("1536Mi"), "1536Mi");
        assert_eq!(canonical("512Ki"), "512Ki");
        assert_eq!(canonical("0.5Ki"), "512");
        assert_eq!(canonical("1e3"), "1e3");
        assert_eq!(canonical("0.1"), "100m");
        assert_eq!(canonical("-2"), "-2");
        assert_eq!(canonical("0Mi"), "0");
        for bad in ["", "Mi", "1.2.3", "1x", "1Kii", "--1", "1e", "."] {
            assert_eq!(Quantity::parse(bad), None, "{bad}");
        }
    }
}
