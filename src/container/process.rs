//! A process's state and start time from one read of /proc/<pid>/stat:
//! whether a recorded pid is still the container's process.

/// A process's state letter and start time (ticks since boot, field 22),
/// from one read of /proc/<pid>/stat.
pub fn process_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// Start time (ticks since boot) of a process, from /proc/<pid>/stat.
pub fn process_start_time(pid: i32) -> Option<u64> {
    process_stat(pid).map(|(_, start)| start)
}

/// Whether a process exists and is not a zombie.
pub fn is_live(pid: i32) -> bool {
    process_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self() {
        let t = process_start_time(std::process::id() as i32);
        assert!(t.is_some());
        assert_eq!(t, process_start_time(std::process::id() as i32));
    }
}
