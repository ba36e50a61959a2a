//! Interleaved rounds: how a row compares two clients (A, the baseline; B, the SDK or the
//! variant) on a shared machine, slot by slot in ABBA and BAAB order, and reads its medians,
//! ratio and noise floor. The trials behind the numbers here are in `docs/benchmarks-notes.md`
//! ("Choosing the rounds").

use std::time::Duration;

use crate::{Result, median};

/// Interleaved rounds per row. The noise on a shared 2-core host comes in bursts per slot, not
/// per second, so many short slots steady a row's median better than fewer long ones in the
/// same time.
pub const ROUNDS: usize = 90;
/// Rounds of a one-caller row: its slot holds a few hundred calls (thousands at concurrency
/// 32), so a round's ratio wobbles more.
pub const ROUNDS_ONE_CALLER: usize = 2 * ROUNDS;
/// Rounds of a row whose two sides run the same request path (a shared store against the memory
/// store: a fresh token is served without the store). Such a row can only show noise or a
/// defect, and its noise is the host's: over four full runs these rows read 0.965-1.016 with
/// 90 rounds while the host's rate swung between 50,000 and 82,000 calls/s from one row to the
/// next; twice the rounds narrow the spread of its median by a factor of about 1.4.
pub const ROUNDS_SAME_PATH: usize = 2 * ROUNDS;
/// One slot's length.
pub const ROUND: Duration = Duration::from_millis(100);

/// Rounds of a row with `callers` concurrent callers.
pub fn rounds_for(callers: usize) -> usize {
    if callers == 1 { ROUNDS_ONE_CALLER } else { ROUNDS }
}

/// One configuration's rates, round by round (A = raw or the baseline, B = the SDK or the
/// variant), each round kept as A's first run, B's two, A's second (see [`AbbaRow::round`]).
pub struct AbbaRow {
    /// What the row measures.
    pub name: String,
    /// Each round's rates: A's first run, B's two, A's second.
    pub rounds: Vec<[f64; 4]>,
}

impl AbbaRow {
    /// Round `index` of a row, `rate(is_b)` measuring one slot: A, B, B, A in even rounds and
    /// B, A, A, B in odd ones. Symmetric in time, so the machine's drift within a round cancels
    /// instead of favouring the slot in the middle; alternated, so neither side always has a
    /// round's first slot, which at one caller runs slower than the three after it, whichever
    /// client is in it. Kept as A's first run, B's two, A's second.
    pub fn round(index: usize, mut rate: impl FnMut(bool) -> f64) -> [f64; 4] {
        if index.is_multiple_of(2) {
            [false, true, true, false].map(&mut rate)
        } else {
            let [b1, a1, a2, b2] = [true, false, false, true].map(&mut rate);
            [a1, b1, b2, a2]
        }
    }

    /// Median rate of B.
    pub fn b(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[1] + r[2]) / 2.0).collect())
    }
    /// Median rate of A.
    pub fn a(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[0] + r[3]) / 2.0).collect())
    }
    /// Median over rounds of B's rate against A's.
    pub fn ratio(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[1] + r[2]) / (r[0] + r[3])).collect())
    }
    /// A's second run against its first: the noise floor.
    pub fn control(&self) -> f64 {
        median(self.rounds.iter().map(|r| r[3] / r[0]).collect())
    }

    /// The row as one line of `--rows-out`: its name, then each round's four rates.
    pub fn to_line(&self) -> String {
        let rounds: Vec<String> =
            self.rounds.iter().map(|r| r.map(|rate| format!("{rate:.1}")).join(",")).collect();
        format!("{}\t{}\n", self.name, rounds.join("\t"))
    }

    /// A row read back from [`AbbaRow::to_line`].
    pub fn from_line(line: &str) -> Result<Self> {
        let mut fields = line.split('\t');
        let name = fields.next().ok_or("an empty row")?.to_owned();
        let rounds = fields
            .map(|round| {
                let rates: Vec<f64> =
                    round.split(',').map(str::parse).collect::<std::result::Result<_, _>>()?;
                <[f64; 4]>::try_from(rates).map_err(|_| "a round without four rates".into())
            })
            .collect::<Result<_>>()?;
        Ok(Self { name, rounds })
    }
}

#[cfg(test)]
mod tests {
    use super::AbbaRow;

    /// The pinned child hands its rows back as text: names (commas, colons and all) and every
    /// round's rates come back as they went.
    #[test]
    fn a_row_survives_the_trip_through_rows_out() {
        let row = AbbaRow {
            name: "async (reqwest), concurrency 32: SDK against oauth2-rs 5 + hand-written cache"
                .into(),
            rounds: vec![[48470.0, 49290.5, 50110.0, 47990.0], [10.0, 20.0, 30.0, 40.0]],
        };
        let back = AbbaRow::from_line(row.to_line().trim_end()).unwrap();
        assert_eq!(back.name, row.name);
        assert_eq!(back.rounds, row.rounds);
        assert!(AbbaRow::from_line("a row\t1,2,3").is_err());
        assert!(AbbaRow::from_line("a row\t1,2,x,4").is_err());
    }

    /// Rounds run ABBA and BAAB in turn, and each is kept as A's first run, B's two, A's
    /// second, so the ratio and the control read the same fields whichever order ran.
    #[test]
    fn rounds_alternate_and_are_kept_in_one_order() {
        for (index, order) in [(0, "ABBA"), (1, "BAAB"), (2, "ABBA"), (7, "BAAB")] {
            let mut ran = String::new();
            let (mut a, mut b) = (0.0, 10.0);
            let round = AbbaRow::round(index, |is_b| {
                ran.push(if is_b { 'B' } else { 'A' });
                let next = if is_b { &mut b } else { &mut a };
                *next += 1.0;
                *next
            });
            assert_eq!(ran, order);
            assert_eq!(round, [1.0, 11.0, 12.0, 2.0], "round {index}");
        }
    }
}
