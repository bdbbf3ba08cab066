//! The file system itself, through the kernel.

use std::{io::Write, os::unix::fs::OpenOptionsExt};

use logcut_powercut::{CutAt, Disk, Faults, Lose, Mount};

#[test]
fn smoke() {
    let base = std::env::temp_dir().join(format!("pc-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let mut disk = Disk::new();
    disk.create_dir_all("logs".as_ref());
    let m = Mount::new(disk, &base, Faults::default()).unwrap();
    let p = base.join("logs");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(p.join("a"))
        .unwrap();
    f.write_all(b"hello").unwrap();
    f.sync_data().unwrap();
    std::fs::File::open(&p).unwrap().sync_all().unwrap();
    f.write_all(b" world").unwrap();
    std::fs::hard_link(p.join("a"), p.join("b")).unwrap();
    assert_eq!(std::fs::read(p.join("b")).unwrap(), b"hello world");
    drop(f);
    let _ = CutAt::Op(1);
    let mut disk = m.unmount().unwrap();
    let r = disk.power_cut(Lose::All);
    assert_eq!(disk.read("logs/a".as_ref()), Some(b"hello".to_vec()));
    assert_eq!(disk.read("logs/b".as_ref()), None, "{r:?}");
    let _ = std::fs::remove_dir(&base);
}
