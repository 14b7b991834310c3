//! The fake camera: device state, the V4L2 ioctls, buffer memory, frame
//! pacing, poll and unplugging.
//!
//! Model, close to uvcvideo + videobuf2:
//! - Device-wide: current format, frame rate, control values. Like a real
//!   camera they persist across opens and reset when it is "replugged".
//! - Per open fd: its MMAP buffers (one memfd holding all of them), the
//!   queue of buffers waiting for a frame, the done list, and the stream.
//! - Frames are produced lazily: whenever the app polls, dequeues or asks,
//!   we look at the clock. Ticks fall at STREAMON + k * interval (k >= 1).
//!   If a buffer is queued and a tick has passed that was not delivered yet,
//!   the newest such tick's frame goes into one buffer. So there is at most
//!   one frame per tick and never a burst to catch up after a slow reader;
//!   ticks nobody had a buffer for are lost, which shows as a gap in
//!   `sequence` (= tick - 1), as with a real driver.
//! - Unplugging: the `unplugged` file is checked on every call for the
//!   device (one access() syscall). Seeing it bumps a generation number:
//!   every fd opened before is dead for good (ENODEV), even after replug.
//!
//! All state sits behind one mutex, only ever taken inside the re-entrancy
//! guard (so nothing we call while holding it comes back here) and never
//! held while sleeping.

use crate::config::{self, CARD};
use crate::frames::Source;
use crate::log::log;
use crate::real;
use crate::v4l2::*;
use libc::{EAGAIN, EBADF, EBUSY, EFAULT, EINVAL, EIO, ENODEV, ENOTTY, c_int, c_ulong, c_void, pollfd};
use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Longest sleep in poll/DQBUF between looks at the clock, the control
/// folder and the fd's state: bounds how late an unplug is noticed.
const SLICE_NS: i64 = 10_000_000;

pub const FORMATS: [(u32, u32, &[u8]); 2] =
    [(PIX_FMT_MJPEG, FMT_FLAG_COMPRESSED, b"Motion-JPEG"), (PIX_FMT_YUYV, 0, b"YUYV 4:2:2")];
pub const SIZES: [(u32, u32); 2] = [(640, 480), (320, 240)];
pub const RATES: [u32; 2] = [30, 15];

struct Ctrl {
    id: u32,
    name: &'static [u8],
    min: i32,
    max: i32,
    default: i32,
}
/// Sorted by id (NEXT_CTRL enumeration relies on it).
const CTRLS: [Ctrl; 2] = [
    Ctrl { id: CID_BRIGHTNESS, name: b"Brightness", min: 0, max: 255, default: 128 },
    Ctrl { id: CID_CONTRAST, name: b"Contrast", min: 0, max: 255, default: 128 },
];

// ---- which fds are fake: lock-free, checked by every close/ioctl/mmap/poll/syscall ----

const MAX_FDS: usize = 64;
static FAKE_FDS: [AtomicI32; MAX_FDS] = [const { AtomicI32::new(-1) }; MAX_FDS];
static FAKE_COUNT: AtomicUsize = AtomicUsize::new(0);

pub fn is_fake_fd(fd: c_int) -> bool {
    fd >= 0 && FAKE_COUNT.load(Ordering::Acquire) != 0 && FAKE_FDS.iter().any(|s| s.load(Ordering::Acquire) == fd)
}

pub fn any_fake_fd() -> bool {
    FAKE_COUNT.load(Ordering::Acquire) != 0
}

fn mark_fake(fd: c_int) -> bool {
    for slot in &FAKE_FDS {
        if slot.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            FAKE_COUNT.fetch_add(1, Ordering::AcqRel);
            return true;
        }
    }
    false
}

fn unmark_fake(fd: c_int) {
    for slot in &FAKE_FDS {
        if slot.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            FAKE_COUNT.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub fn now_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

// ---- state ----

struct State {
    fourcc: u32,
    width: u32,
    height: u32,
    fps: u32,
    controls: [i32; CTRLS.len()],
    /// Bumped when an unplug is seen; fds from older generations are dead.
    generation: u64,
    unplugged: bool,
    fds: Vec<OpenFd>,
}

struct OpenFd {
    fd: c_int,
    generation: u64,
    bufs: Option<Buffers>,
    stream: Option<Stream>,
}

/// The MMAP buffers of one fd: `count` slots of `stride` bytes (page
/// aligned) in one memfd. The app's mmap() of the fake fd maps the memfd at
/// the slot's offset (MAP_SHARED), so its munmap() is an ordinary one and
/// the pages stay valid even after REQBUFS(0) or close, as with vb2.
struct Buffers {
    memfd: c_int,
    base: *mut u8,
    map_len: usize,
    stride: usize,
    length: u32,
    slots: Vec<Slot>,
    queue: VecDeque<u32>,
    done: VecDeque<u32>,
}
// The raw pointer is our own mapping, only touched under the state mutex.
unsafe impl Send for Buffers {}

#[derive(Default, Clone, Copy)]
struct Slot {
    queued: bool,
    done: bool,
    mapped: bool,
    bytesused: u32,
    /// High-water mark of bytes written, so only stale bytes get zeroed.
    dirty: usize,
    sequence: u32,
    timestamp_ns: i64,
}

struct Stream {
    t0: i64,
    interval: i64,
    last_tick: u64,
    delivered: u64,
    source: Source,
}

static STATE: Mutex<State> = Mutex::new(State::new());

fn state() -> MutexGuard<'static, State> {
    // A panic aborts (panic = "abort"), so poisoning cannot really happen.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is the device there right now? Records an unplug (see module docs).
/// Takes the state lock: call inside the guard only.
pub fn plugged() -> bool {
    state().refresh_plug()
}

impl State {
    const fn new() -> State {
        State {
            fourcc: PIX_FMT_MJPEG,
            width: SIZES[0].0,
            height: SIZES[0].1,
            fps: RATES[0],
            controls: [CTRLS[0].default, CTRLS[1].default],
            generation: 0,
            unplugged: false,
            fds: Vec::new(),
        }
    }

    fn refresh_plug(&mut self) -> bool {
        let plugged = match &config::get().unplugged {
            Some(p) => (unsafe { real::access(p.as_ptr(), libc::F_OK) }) != 0,
            None => true,
        };
        if !plugged && !self.unplugged {
            self.unplugged = true;
            self.generation += 1;
            log!("unplugged");
        } else if plugged && self.unplugged {
            // A "new" camera: default settings, as after a real replug.
            let fds = std::mem::take(&mut self.fds);
            *self = State { generation: self.generation, fds, ..State::new() };
            log!("replugged");
        }
        plugged
    }

    /// Index of a live fd: EBADF if unknown, ENODEV if unplugged since open.
    fn live(&mut self, fd: c_int) -> Result<usize, c_int> {
        let plugged = self.refresh_plug();
        let i = self.fds.iter().position(|f| f.fd == fd).ok_or(EBADF)?;
        if !plugged || self.fds[i].generation != self.generation {
            return Err(ENODEV);
        }
        Ok(i)
    }

    /// Another live fd holding buffers makes format/buffer changes EBUSY.
    fn busy(&self, except: Option<c_int>) -> bool {
        self.fds.iter().any(|f| f.generation == self.generation && f.bufs.is_some() && Some(f.fd) != except)
    }

    fn streaming(&self) -> bool {
        self.fds.iter().any(|f| f.generation == self.generation && f.stream.is_some())
    }
}

fn sizeimage(width: u32, height: u32) -> u32 {
    // YUYV exactly; MJPEG a generous maximum, as UVC cameras report.
    width * height * 2
}

fn pix_format(fourcc: u32, width: u32, height: u32) -> PixFormat {
    PixFormat {
        width,
        height,
        pixelformat: fourcc,
        field: FIELD_NONE,
        bytesperline: if fourcc == PIX_FMT_YUYV { width * 2 } else { 0 },
        sizeimage: sizeimage(width, height),
        colorspace: COLORSPACE_SRGB,
        priv_: PIX_FMT_PRIV_MAGIC,
        flags: 0,
        ycbcr_enc: 0,
        quantization: 0,
        xfer_func: 0,
    }
}

/// The supported format closest to a request: the same pixel format if we
/// have it (else MJPEG), the nearest size by squared distance.
fn nearest(fourcc: u32, width: u32, height: u32) -> (u32, u32, u32) {
    let fourcc = if FORMATS.iter().any(|f| f.0 == fourcc) { fourcc } else { PIX_FMT_MJPEG };
    let dist = |&(w, h): &(u32, u32)| (w as i64 - width as i64).pow(2) + (h as i64 - height as i64).pow(2);
    let (w, h) = *SIZES.iter().min_by_key(|s| dist(s)).expect("sizes");
    (fourcc, w, h)
}

// ---- open / close ----

/// Opens the fake device: a fresh eventfd stands in as the real fd (so
/// close, fcntl, dup work on it), registered as fake. O_NONBLOCK and
/// O_CLOEXEC carry over; DQBUF reads O_NONBLOCK back with fcntl.
pub fn open(flags: c_int) -> Result<c_int, c_int> {
    let mut st = state();
    if !st.refresh_plug() {
        return Err(libc::ENOENT);
    }
    if flags & libc::O_DIRECTORY != 0 {
        return Err(libc::ENOTDIR);
    }
    let efd_flags = (flags & libc::O_NONBLOCK) | (flags & libc::O_CLOEXEC);
    let fd = unsafe { libc::eventfd(0, efd_flags) };
    if fd < 0 {
        return Err(crate::guard::errno());
    }
    if !mark_fake(fd) {
        unsafe { real::close(fd) };
        return Err(libc::EMFILE);
    }
    let generation = st.generation;
    st.fds.push(OpenFd { fd, generation, bufs: None, stream: None });
    log!("open fd={fd} nonblock={}", flags & libc::O_NONBLOCK != 0);
    Ok(fd)
}

/// Called before the real close(): forgets the fd and frees its buffers.
pub fn close(fd: c_int) {
    let mut st = state();
    unmark_fake(fd);
    if let Some(i) = st.fds.iter().position(|f| f.fd == fd) {
        let f = st.fds.swap_remove(i);
        if f.stream.is_some() {
            log!("streamoff fd={fd} (close)");
        }
        drop(f.bufs);
        log!("close fd={fd}");
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.base.cast(), self.map_len);
            real::close(self.memfd);
        }
    }
}

// ---- mmap ----

pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: libc::off_t,
) -> Result<*mut c_void, c_int> {
    let mut st = state();
    let i = st.live(fd)?;
    let Some(bufs) = st.fds[i].bufs.as_mut() else {
        return Err(EINVAL);
    };
    // vb2 wants MAP_SHARED and an offset QUERYBUF gave out.
    if flags & libc::MAP_SHARED == 0 || offset < 0 || !(offset as usize).is_multiple_of(bufs.stride) {
        return Err(EINVAL);
    }
    let index = offset as usize / bufs.stride;
    if index >= bufs.slots.len() || len == 0 || len > bufs.stride {
        return Err(EINVAL);
    }
    let p = unsafe { real::mmap(addr, len, prot, flags, bufs.memfd, offset) };
    if p == libc::MAP_FAILED {
        return Err(crate::guard::errno());
    }
    bufs.slots[index].mapped = true;
    Ok(p)
}

// ---- ioctl ----

/// Reads the ioctl argument, lets `f` edit it, writes it back (unaligned
/// accesses: the caller's struct is just bytes to us).
unsafe fn with_arg<T: Copy, R>(arg: *mut c_void, f: impl FnOnce(&mut T) -> Result<R, c_int>) -> Result<R, c_int> {
    if arg.is_null() {
        return Err(EFAULT);
    }
    let mut v: T = unsafe { ptr::read_unaligned(arg.cast()) };
    let r = f(&mut v)?;
    unsafe { ptr::write_unaligned(arg.cast(), v) };
    Ok(r)
}

fn capture_type(t: u32) -> Result<(), c_int> {
    if t == BUF_TYPE_VIDEO_CAPTURE { Ok(()) } else { Err(EINVAL) }
}

pub unsafe fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> Result<(), c_int> {
    // The kernel takes the request as a 32-bit unsigned int.
    let request = request as u32;
    if request == VIDIOC_DQBUF {
        return unsafe { dqbuf(fd, arg) };
    }
    let mut st = state();
    let i = st.live(fd)?;
    let st = &mut *st;
    unsafe {
        match request {
            VIDIOC_QUERYCAP => with_arg(arg, |c: &mut Capability| {
                let index = config::get().index;
                *c = Capability {
                    driver: cstr_field(b"fakecam"),
                    card: cstr_field(CARD.as_bytes()),
                    bus_info: cstr_field(format!("fake:{index}").as_bytes()),
                    version: (6 << 16) | (1 << 8),
                    capabilities: CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_DEVICE_CAPS,
                    device_caps: CAP_VIDEO_CAPTURE | CAP_STREAMING,
                    reserved: [0; 3],
                };
                Ok(())
            }),
            VIDIOC_ENUM_FMT => with_arg(arg, |d: &mut FmtDesc| {
                capture_type(d.type_)?;
                let &(fourcc, flags, name) = FORMATS.get(d.index as usize).ok_or(EINVAL)?;
                *d = FmtDesc {
                    index: d.index,
                    type_: d.type_,
                    flags,
                    description: cstr_field(name),
                    pixelformat: fourcc,
                    mbus_code: 0,
                    reserved: [0; 3],
                };
                Ok(())
            }),
            VIDIOC_ENUM_FRAMESIZES => with_arg(arg, |e: &mut FrmSizeEnum| {
                if !FORMATS.iter().any(|f| f.0 == e.pixel_format) {
                    return Err(EINVAL);
                }
                let &(w, h) = SIZES.get(e.index as usize).ok_or(EINVAL)?;
                e.type_ = FRMSIZE_TYPE_DISCRETE;
                e.size = [w, h, 0, 0, 0, 0];
                e.reserved = [0; 2];
                Ok(())
            }),
            VIDIOC_ENUM_FRAMEINTERVALS => with_arg(arg, |e: &mut FrmIvalEnum| {
                if !FORMATS.iter().any(|f| f.0 == e.pixel_format) || !SIZES.contains(&(e.width, e.height)) {
                    return Err(EINVAL);
                }
                let &fps = RATES.get(e.index as usize).ok_or(EINVAL)?;
                e.type_ = FRMIVAL_TYPE_DISCRETE;
                e.interval = [1, fps, 0, 0, 0, 0];
                e.reserved = [0; 2];
                Ok(())
            }),
            VIDIOC_G_FMT => with_arg(arg, |f: &mut Format| {
                capture_type(f.type_)?;
                f.fmt = FormatUnion { raw: [0; 200] };
                f.fmt.pix = pix_format(st.fourcc, st.width, st.height);
                Ok(())
            }),
            VIDIOC_S_FMT | VIDIOC_TRY_FMT => with_arg(arg, |f: &mut Format| {
                capture_type(f.type_)?;
                let want = f.fmt.pix;
                let (fourcc, w, h) = nearest(want.pixelformat, want.width, want.height);
                if request == VIDIOC_S_FMT {
                    // uvcvideo: no format change while buffers exist.
                    if st.busy(None) {
                        return Err(EBUSY);
                    }
                    (st.fourcc, st.width, st.height) = (fourcc, w, h);
                    log!("s_fmt fd={fd} {} {w}x{h} (asked {}x{})", fourcc_str(fourcc), want.width, want.height);
                }
                f.fmt = FormatUnion { raw: [0; 200] };
                f.fmt.pix = pix_format(fourcc, w, h);
                Ok(())
            }),
            VIDIOC_G_PARM | VIDIOC_S_PARM => with_arg(arg, |p: &mut StreamParm| {
                capture_type(p.type_)?;
                if request == VIDIOC_S_PARM {
                    if st.streaming() {
                        return Err(EBUSY);
                    }
                    let t = p.parm.capture.timeperframe;
                    // 0/0 asks for the nominal rate.
                    let asked = if t.numerator == 0 || t.denominator == 0 {
                        RATES[0] as f64
                    } else {
                        t.denominator as f64 / t.numerator as f64
                    };
                    st.fps = *RATES
                        .iter()
                        .min_by(|a, b| (**a as f64 - asked).abs().total_cmp(&(**b as f64 - asked).abs()))
                        .expect("rates");
                    log!("s_parm fd={fd} fps={} (asked {}/{})", st.fps, t.numerator, t.denominator);
                }
                p.parm = ParmUnion { raw: [0; 200] };
                p.parm.capture = CaptureParm {
                    capability: CAP_TIMEPERFRAME,
                    capturemode: 0,
                    timeperframe: Fract { numerator: 1, denominator: st.fps },
                    extendedmode: 0,
                    readbuffers: 0,
                    reserved: [0; 4],
                };
                Ok(())
            }),
            VIDIOC_QUERYCTRL => with_arg(arg, |q: &mut QueryCtrl| {
                let c = &CTRLS[find_ctrl(q.id, true).ok_or(EINVAL)?];
                *q = QueryCtrl {
                    id: c.id,
                    type_: CTRL_TYPE_INTEGER,
                    name: cstr_field(c.name),
                    minimum: c.min,
                    maximum: c.max,
                    step: 1,
                    default_value: c.default,
                    flags: 0,
                    reserved: [0; 2],
                };
                Ok(())
            }),
            VIDIOC_QUERY_EXT_CTRL => with_arg(arg, |q: &mut QueryExtCtrl| {
                let c = &CTRLS[find_ctrl(q.id, true).ok_or(EINVAL)?];
                *q = QueryExtCtrl {
                    id: c.id,
                    type_: CTRL_TYPE_INTEGER,
                    name: cstr_field(c.name),
                    minimum: c.min as i64,
                    maximum: c.max as i64,
                    step: 1,
                    default_value: c.default as i64,
                    flags: 0,
                    elem_size: 4,
                    elems: 1,
                    nr_of_dims: 0,
                    dims: [0; 4],
                    reserved: [0; 32],
                };
                Ok(())
            }),
            VIDIOC_QUERYMENU => Err(EINVAL),
            VIDIOC_G_CTRL => with_arg(arg, |c: &mut Control| {
                c.value = st.controls[find_ctrl(c.id, false).ok_or(EINVAL)?];
                Ok(())
            }),
            VIDIOC_S_CTRL => with_arg(arg, |c: &mut Control| {
                let k = find_ctrl(c.id, false).ok_or(EINVAL)?;
                // Integer controls are clamped into range, as v4l2-ctrls does.
                c.value = c.value.clamp(CTRLS[k].min, CTRLS[k].max);
                st.controls[k] = c.value;
                log!("s_ctrl fd={fd} id={:#x} value={}", c.id, c.value);
                Ok(())
            }),
            VIDIOC_G_EXT_CTRLS | VIDIOC_S_EXT_CTRLS | VIDIOC_TRY_EXT_CTRLS => {
                with_arg(arg, |c: &mut ExtControls| ext_ctrls(st, fd, request, c))
            }
            VIDIOC_ENUMINPUT => with_arg(arg, |inp: &mut Input| {
                if inp.index != 0 {
                    return Err(EINVAL);
                }
                *inp = Input {
                    index: 0,
                    name: cstr_field(b"Camera 1"),
                    type_: INPUT_TYPE_CAMERA,
                    audioset: 0,
                    tuner: 0,
                    std: 0,
                    status: 0,
                    capabilities: 0,
                    reserved: [0; 3],
                };
                Ok(())
            }),
            VIDIOC_G_INPUT => with_arg(arg, |n: &mut c_int| {
                *n = 0;
                Ok(())
            }),
            VIDIOC_S_INPUT => with_arg(arg, |n: &mut c_int| if *n == 0 { Ok(()) } else { Err(EINVAL) }),
            VIDIOC_REQBUFS => with_arg(arg, |r: &mut RequestBuffers| reqbufs(st, i, r)),
            VIDIOC_QUERYBUF => with_arg(arg, |b: &mut Buffer| {
                capture_type(b.type_)?;
                let bufs = st.fds[i].bufs.as_ref().ok_or(EINVAL)?;
                if b.index as usize >= bufs.slots.len() {
                    return Err(EINVAL);
                }
                *b = describe(bufs, b.index);
                Ok(())
            }),
            VIDIOC_QBUF => with_arg(arg, |b: &mut Buffer| {
                capture_type(b.type_)?;
                if b.memory != MEMORY_MMAP {
                    return Err(EINVAL);
                }
                let bufs = st.fds[i].bufs.as_mut().ok_or(EINVAL)?;
                let slot = bufs.slots.get_mut(b.index as usize).ok_or(EINVAL)?;
                if slot.queued || slot.done {
                    return Err(EINVAL);
                }
                slot.queued = true;
                bufs.queue.push_back(b.index);
                *b = describe(bufs, b.index);
                Ok(())
            }),
            VIDIOC_STREAMON => with_arg(arg, |t: &mut c_int| {
                capture_type(*t as u32)?;
                let (fourcc, w, h, fps) = (st.fourcc, st.width, st.height, st.fps);
                let f = &mut st.fds[i];
                // Buffers are sized at REQBUFS and S_FMT is refused while
                // they exist, so they fit; checked anyway before writing.
                match &f.bufs {
                    Some(b) if b.length >= sizeimage(w, h) => {}
                    _ => return Err(EINVAL),
                }
                if f.stream.is_some() {
                    return Ok(());
                }
                let source = Source::load(fourcc, w, h).map_err(|why| {
                    log!("streamon-failed fd={fd} {} {w}x{h} EIO: {why}", fourcc_str(fourcc));
                    EIO
                })?;
                f.stream = Some(Stream {
                    t0: now_ns(),
                    interval: 1_000_000_000 / fps as i64,
                    last_tick: 0,
                    delivered: 0,
                    source,
                });
                log!("streamon fd={fd} {} {w}x{h} fps={fps}", fourcc_str(fourcc));
                Ok(())
            }),
            VIDIOC_STREAMOFF => with_arg(arg, |t: &mut c_int| {
                capture_type(*t as u32)?;
                let f = &mut st.fds[i];
                // Like vb2: stopping returns every buffer to the app.
                if let Some(bufs) = f.bufs.as_mut() {
                    bufs.queue.clear();
                    bufs.done.clear();
                    for s in &mut bufs.slots {
                        (s.queued, s.done) = (false, false);
                    }
                }
                if let Some(s) = f.stream.take() {
                    log!("streamoff fd={fd} delivered={}", s.delivered);
                }
                Ok(())
            }),
            _ => Err(ENOTTY),
        }
    }
}

fn fourcc_str(f: u32) -> String {
    String::from_utf8_lossy(&f.to_le_bytes()).into_owned()
}

/// The control for `id`: exact, or with NEXT_CTRL the first one after it.
fn find_ctrl(id: u32, allow_next: bool) -> Option<usize> {
    let next = CTRL_FLAG_NEXT_CTRL | CTRL_FLAG_NEXT_COMPOUND;
    if allow_next && id & next != 0 {
        let after = id & !next;
        CTRLS.iter().position(|c| c.id > after)
    } else {
        CTRLS.iter().position(|c| c.id == id)
    }
}

fn ext_ctrls(st: &mut State, fd: c_int, request: u32, c: &mut ExtControls) -> Result<(), c_int> {
    let which = c.which;
    let defaults = which == CTRL_WHICH_DEF_VAL;
    if which != CTRL_WHICH_CUR_VAL && which != CTRL_CLASS_USER && !(defaults && request == VIDIOC_G_EXT_CTRLS) {
        return Err(EINVAL);
    }
    if c.count == 0 {
        return Ok(());
    }
    if c.controls.is_null() {
        return Err(EFAULT);
    }
    if c.count > 1024 {
        return Err(EINVAL);
    }
    let read = |k: u32| unsafe { ptr::read_unaligned(c.controls.add(k as usize)) };
    let write = |k: u32, v: ExtControl| unsafe { ptr::write_unaligned(c.controls.add(k as usize), v) };
    // Check every id first: on error nothing is applied.
    for k in 0..c.count {
        if find_ctrl(read(k).id, false).is_none() {
            c.error_idx = if request == VIDIOC_G_EXT_CTRLS { k } else { c.count };
            return Err(EINVAL);
        }
    }
    for k in 0..c.count {
        let mut e = read(k);
        let n = find_ctrl(e.id, false).expect("checked");
        let value = if request == VIDIOC_G_EXT_CTRLS {
            if defaults { CTRLS[n].default } else { st.controls[n] }
        } else {
            // An integer control's value is the 32-bit `value` (the low
            // half of value64); v4l writes value64, C callers `value`.
            let asked = e.value64 as i32;
            let v = asked.clamp(CTRLS[n].min, CTRLS[n].max);
            if request == VIDIOC_S_EXT_CTRLS {
                st.controls[n] = v;
                let id = e.id;
                log!("s_ctrl fd={fd} id={id:#x} value={v}");
            }
            v
        };
        e.value64 = value as i64;
        write(k, e);
    }
    Ok(())
}

fn reqbufs(st: &mut State, i: usize, r: &mut RequestBuffers) -> Result<(), c_int> {
    capture_type(r.type_)?;
    if r.memory != MEMORY_MMAP {
        return Err(EINVAL);
    }
    let fd = st.fds[i].fd;
    if st.fds[i].stream.is_some() || st.busy(Some(fd)) {
        return Err(EBUSY);
    }
    // Old buffers go first; pages the app still has mapped stay valid.
    st.fds[i].bufs = None;
    r.capabilities = BUF_CAP_SUPPORTS_MMAP;
    r.flags = 0;
    r.reserved = [0; 3];
    if r.count == 0 {
        log!("reqbufs fd={fd} count=0");
        return Ok(());
    }
    let count = r.count.clamp(2, 8);
    let length = sizeimage(st.width, st.height);
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let stride = (length as usize).div_ceil(page) * page;
    let map_len = stride * count as usize;
    let memfd = unsafe { libc::memfd_create(c"fakecam-buffers".as_ptr(), libc::MFD_CLOEXEC) };
    if memfd < 0 {
        return Err(crate::guard::errno());
    }
    let base = unsafe {
        if libc::ftruncate(memfd, map_len as libc::off_t) != 0 {
            let e = crate::guard::errno();
            real::close(memfd);
            return Err(e);
        }
        real::mmap(ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, memfd, 0)
    };
    if base == libc::MAP_FAILED {
        let e = crate::guard::errno();
        unsafe { real::close(memfd) };
        return Err(e);
    }
    st.fds[i].bufs = Some(Buffers {
        memfd,
        base: base.cast(),
        map_len,
        stride,
        length,
        slots: vec![Slot::default(); count as usize],
        queue: VecDeque::new(),
        done: VecDeque::new(),
    });
    r.count = count;
    log!("reqbufs fd={fd} count={count} length={length}");
    Ok(())
}

/// A buffer's `v4l2_buffer` as QUERYBUF/QBUF/DQBUF report it.
fn describe(bufs: &Buffers, index: u32) -> Buffer {
    let s = &bufs.slots[index as usize];
    let mut flags = BUF_FLAG_TIMESTAMP_MONOTONIC | BUF_FLAG_TSTAMP_SRC_SOE;
    if s.mapped {
        flags |= BUF_FLAG_MAPPED;
    }
    if s.queued {
        flags |= BUF_FLAG_QUEUED;
    }
    if s.done {
        flags |= BUF_FLAG_DONE;
    }
    Buffer {
        index,
        type_: BUF_TYPE_VIDEO_CAPTURE,
        bytesused: s.bytesused,
        flags,
        field: FIELD_NONE,
        timestamp: Timeval { tv_sec: s.timestamp_ns / 1_000_000_000, tv_usec: s.timestamp_ns % 1_000_000_000 / 1000 },
        timecode: Timecode { type_: 0, flags: 0, frames: 0, seconds: 0, minutes: 0, hours: 0, userbits: [0; 4] },
        sequence: s.sequence,
        memory: MEMORY_MMAP,
        m: index as u64 * bufs.stride as u64,
        length: bufs.length,
        reserved2: 0,
        request_fd: 0,
    }
}

impl Stream {
    fn tick_at(&self, now: i64) -> u64 {
        ((now - self.t0).max(0) / self.interval) as u64
    }

    /// Fills one queued buffer if a new tick has passed (see module docs).
    fn advance(&mut self, bufs: &mut Buffers, now: i64, fd: c_int, brightness: i32) {
        let tick = self.tick_at(now);
        if tick == 0 || tick <= self.last_tick {
            return;
        }
        let Some(index) = bufs.queue.pop_front() else {
            return;
        };
        let sequence = (tick - 1) as u32;
        let stride = bufs.stride;
        let mem =
            unsafe { std::slice::from_raw_parts_mut(bufs.base.add(index as usize * stride), bufs.length as usize) };
        let (used, name) = self.source.fill(mem, self.delivered, sequence, brightness);
        let slot = &mut bufs.slots[index as usize];
        // Zero what an earlier, longer frame left behind: consumers that
        // ignore bytesused (v4l 0.14 hands out the whole buffer) then see
        // the frame followed by zeros, not stale JPEG bytes.
        if slot.dirty > used {
            mem[used..slot.dirty].fill(0);
        }
        slot.dirty = used;
        let capture = self.t0 + tick as i64 * self.interval;
        let offset = config::get().ts_offset_ns;
        *slot = Slot {
            queued: false,
            done: true,
            bytesused: used as u32,
            sequence,
            timestamp_ns: (capture - offset).max(0),
            ..*slot
        };
        bufs.done.push_back(index);
        self.last_tick = tick;
        self.delivered += 1;
        log!(
            "frame fd={fd} seq={sequence} index={index} bytesused={used} ts_ns={}{}{}",
            slot.timestamp_ns,
            if name.is_some() { " file=" } else { "" },
            name.unwrap_or("")
        );
    }

    /// When the next frame can be ready.
    fn next_wake(&self, now: i64) -> i64 {
        self.t0 + (self.last_tick.max(self.tick_at(now)) as i64 + 1) * self.interval
    }
}

unsafe fn dqbuf(fd: c_int, arg: *mut c_void) -> Result<(), c_int> {
    if arg.is_null() {
        return Err(EFAULT);
    }
    let asked: Buffer = unsafe { ptr::read_unaligned(arg.cast()) };
    capture_type(asked.type_)?;
    if asked.memory != MEMORY_MMAP {
        return Err(EINVAL);
    }
    // The fake fd carries the caller's O_NONBLOCK (also after F_SETFL).
    let nonblocking = unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK != 0;
    loop {
        let wait = {
            let mut st = state();
            let i = st.live(fd)?;
            let brightness = st.controls[0];
            let f = &mut st.fds[i];
            let (Some(bufs), Some(stream)) = (f.bufs.as_mut(), f.stream.as_mut()) else {
                return Err(EINVAL);
            };
            let now = now_ns();
            stream.advance(bufs, now, fd, brightness);
            if let Some(index) = bufs.done.pop_front() {
                bufs.slots[index as usize].done = false;
                let b = describe(bufs, index);
                unsafe { ptr::write_unaligned(arg.cast(), b) };
                return Ok(());
            }
            if nonblocking {
                return Err(EAGAIN);
            }
            (stream.next_wake(now) - now).clamp(0, SLICE_NS)
        };
        std::thread::sleep(Duration::from_nanos(wait as u64));
    }
}

// ---- poll ----

/// poll() over a set holding at least one fake fd. Fake entries get their
/// readiness from the stream state (POLLIN|POLLRDNORM when a buffer is done,
/// POLLERR when not streaming or nothing is queued, POLLERR|POLLHUP once
/// unplugged, POLLNVAL if closed meanwhile). Real entries are polled by the
/// real ppoll() on a copy where the fake ones have fd -1 (ignored by the
/// kernel); we wait in slices of at most 10 ms or until the next frame tick,
/// so blocked pollers notice frames, unplugs and real fds. Returns -1 with
/// the real ppoll's errno (e.g. EINTR).
pub unsafe fn poll(fds: &mut [pollfd], timeout: c_int) -> Result<c_int, c_int> {
    let start = now_ns();
    let deadline = (timeout >= 0).then(|| start + timeout as i64 * 1_000_000);
    let fake: Vec<bool> = fds.iter().map(|p| is_fake_fd(p.fd)).collect();
    let mut real_set: Vec<pollfd> = fds
        .iter()
        .zip(&fake)
        .map(|(p, &f)| if f { pollfd { fd: -1, events: 0, revents: 0 } } else { pollfd { revents: 0, ..*p } })
        .collect();
    let mut fake_revents = vec![0i16; fds.len()];
    loop {
        let now = now_ns();
        let mut ready = 0;
        let mut wake = i64::MAX;
        {
            let mut st = state();
            let plugged = st.refresh_plug();
            let (brightness, generation) = (st.controls[0], st.generation);
            for (k, p) in fds.iter().enumerate().filter(|(k, _)| fake[*k]) {
                let (rev, w) = match st.fds.iter_mut().find(|f| f.fd == p.fd) {
                    None => (libc::POLLNVAL, i64::MAX),
                    Some(_) if !plugged => (libc::POLLERR | libc::POLLHUP, i64::MAX),
                    Some(f) if f.generation != generation => (libc::POLLERR | libc::POLLHUP, i64::MAX),
                    Some(f) => match (f.bufs.as_mut(), f.stream.as_mut()) {
                        (Some(bufs), Some(stream)) => {
                            stream.advance(bufs, now, p.fd, brightness);
                            let wanted = p.events & (libc::POLLIN | libc::POLLRDNORM) != 0;
                            if !bufs.done.is_empty() {
                                (if wanted { libc::POLLIN | libc::POLLRDNORM } else { 0 }, i64::MAX)
                            } else if bufs.queue.is_empty() {
                                (libc::POLLERR, i64::MAX)
                            } else {
                                (0, if wanted { stream.next_wake(now) } else { i64::MAX })
                            }
                        }
                        _ => (libc::POLLERR, i64::MAX),
                    },
                };
                fake_revents[k] = rev;
                ready += (rev != 0) as c_int;
                wake = wake.min(w);
            }
        }
        let wait =
            if ready > 0 { 0 } else { (wake.min(deadline.unwrap_or(i64::MAX)).min(now + SLICE_NS) - now).max(0) };
        let ts = libc::timespec { tv_sec: wait / 1_000_000_000, tv_nsec: wait % 1_000_000_000 };
        let n = unsafe { libc::ppoll(real_set.as_mut_ptr(), real_set.len() as libc::nfds_t, &ts, ptr::null()) };
        if n < 0 {
            return Err(crate::guard::errno());
        }
        if n + ready > 0 || deadline.is_some_and(|d| now_ns() >= d) {
            for (k, p) in fds.iter_mut().enumerate() {
                p.revents = if fake[k] { fake_revents[k] } else { real_set[k].revents };
            }
            return Ok(n + ready);
        }
    }
}
