//! Webcams end to end without hardware: framewire captures through nokhwa
//! from the fake UVC camera (`tests/fakecam`, preloaded in a child process:
//! see `support/fakecam.rs`) and serves it over real sockets.

use framewire_tests::fakecam::{self, Kind};
use framewire_tests::*;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

fn now_us() -> u64 {
    framewire::frames::unix_micros(SystemTime::now())
}

#[test]
fn mjpeg_is_passed_through_with_tables_and_broken_frames_dropped() {
    // The device stamps frames 300 ms before it hands them over.
    let env = [("FAKECAM_TS_OFFSET_MS", "300")];
    fakecam::run("mjpeg_is_passed_through_with_tables_and_broken_frames_dropped", &env, |cam| async move {
        let server = start(&["usb=v4l:/dev/video42:640x480@30"]).await.unwrap();
        let addr = server.addr;
        let servable = cam.servable("640x480");
        let (head, frames) = read_stream(addr, "/stream", Duration::from_secs(2)).await.unwrap();
        assert_eq!(head.status, 200);
        assert!(frames.len() >= 20, "{} frames in 2 s", frames.len());
        let mut kinds = HashSet::new();
        for f in &frames {
            let kind = servable.get(&f.part.body).unwrap_or_else(|| {
                panic!("frame {} ({} bytes) is not one of the device's", f.sequence, f.part.body.len())
            });
            kinds.insert(*kind);
            assert!(framewire_core::jpeg::check(&f.part.body).unwrap().has_huffman_tables);
            let age = f.received_us - f.captured_us;
            assert!(age >= 250_000, "X-Timestamp is the driver's capture time, 300 ms back (age {age} µs)");
        }
        assert_eq!(kinds, HashSet::from([Kind::Whole, Kind::NoTables]), "whole frames as sent, tables added where missing");
        for _ in 0..10 {
            let r = get(addr, "/cameras/usb/snapshot").await.unwrap();
            assert!(servable.contains_key(&r.body[..]), "a snapshot is never a broken frame");
        }
        let state = wait_for_camera(addr, "usb", Duration::from_secs(6), |c| c["status"] == "idle").await.unwrap();
        eprintln!("{state}");
        let n = |k: &str| state[k].as_u64().unwrap();
        assert_eq!(n("frames_encoded"), 0, "nothing encoded");
        assert!(n("frames_passed_through") > 0 && n("frames_dropped") > 0);
        assert_eq!(n("frames_passed_through") + n("frames_dropped"), n("frames_captured"));
        assert_eq!(state["format"], "MJPEG 640x480@30, passed through");
    });
}

#[test]
fn yuyv_is_encoded_once_per_frame() {
    fakecam::run("yuyv_is_encoded_once_per_frame", &[], |_cam| async move {
        let server = start(&["usb=v4l:42:320x240@15,format=yuyv"]).await.unwrap();
        let addr = server.addr;
        let readers: Vec<_> =
            (0..3).map(|_| tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(2)).await })).collect();
        for r in readers {
            let (_, frames) = r.await.unwrap().unwrap();
            assert!(frames.len() >= 20, "{} frames in 2 s at 15 fps", frames.len());
            for pair in frames.windows(2) {
                assert_ne!(pair[0].part.body, pair[1].part.body, "the device's frames differ");
            }
            for f in &frames {
                assert_eq!(decode_jpeg(&f.part.body).unwrap(), (320, 240));
            }
        }
        let state = wait_for_camera(addr, "usb", Duration::from_secs(6), |c| c["status"] == "idle").await.unwrap();
        eprintln!("{state}");
        assert_eq!(state["frames_encoded"], state["frames_captured"], "one encode per frame for three viewers");
        assert_eq!(state["frames_passed_through"], 0);
        assert_eq!(state["format"], "YUYV 320x240@15, JPEG-encoded here");
    });
}

#[test]
fn unplugging_shows_no_signal_and_replugging_resumes_the_same_stream() {
    fakecam::run("unplugging_shows_no_signal_and_replugging_resumes_the_same_stream", &[], |cam| async move {
        let server = start(&["usb=v4l:42:640x480@30"]).await.unwrap();
        let addr = server.addr;
        let servable = cam.servable("640x480");
        let reader = tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(7)).await });
        wait_for_camera(addr, "usb", Duration::from_secs(5), |c| c["status"] == "live").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let unplugged = now_us();
        cam.unplug();
        let down = wait_for_camera(addr, "usb", Duration::from_secs(3), |c| c["status"] == "no-signal").await.unwrap();
        assert!(down["error"].as_str().unwrap().contains("/dev/video42"), "{down}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let replugged = now_us();
        cam.replug();
        wait_for_camera(addr, "usb", Duration::from_secs(5), |c| c["status"] == "live").await.unwrap();
        let (_, frames) = reader.await.unwrap().unwrap();

        let from_device = |f: &&Received| servable.contains_key(&f.part.body[..]);
        assert!(frames.iter().take_while(|f| f.received_us < unplugged).all(|f| from_device(&f)));
        let card = frames.iter().find(|f| f.received_us > unplugged && !from_device(f)).expect("a no-signal card");
        decode_jpeg(&card.part.body).unwrap();
        let to_card = Duration::from_micros(card.received_us - unplugged);
        let back = frames.iter().find(|f| f.received_us > replugged && from_device(f)).expect("live frames after replug");
        let to_live = Duration::from_micros(back.received_us - replugged);
        eprintln!("no-signal card {to_card:?} after the unplug, live again {to_live:?} after the replug");
        assert!(to_card <= Duration::from_secs(1), "no-signal card after {to_card:?}");
        assert!(to_live <= Duration::from_secs(2), "live again after {to_live:?}");
        assert!(frames.iter().filter(|f| f.received_us > back.received_us).count() >= 15, "and stays live");
    });
}

#[test]
fn cameras_lists_the_fake_device_and_a_missing_size_gets_the_closest() {
    fakecam::run("cameras_lists_the_fake_device_and_a_missing_size_gets_the_closest", &[], |_cam| async move {
        let listing = framewire::camera::list_devices().unwrap().join("\n");
        eprintln!("{listing}");
        assert!(listing.contains("v4l:42  framewire fake camera"), "{listing}");
        assert!(listing.contains("MJPEG  640x480@30,15  320x240@30,15"), "{listing}");
        assert!(listing.contains("YUYV   640x480@30,15  320x240@30,15"), "{listing}");

        let server = start(&["usb=v4l:42:1024x768@24"]).await.unwrap();
        let state = camera_state(server.addr, "usb").await.unwrap();
        assert_eq!((state["width"].as_u64(), state["height"].as_u64()), (Some(640), Some(480)), "{state}");
        assert_eq!(state["format"], "MJPEG 640x480@30, passed through (closest to the 1024x768@24 asked for)");
        let r = get(server.addr, "/cameras/usb/snapshot").await.unwrap();
        assert_eq!(decode_jpeg(&r.body).unwrap(), (640, 480));

        let err = start(&["usb=v4l:42,format=nv12"]).await.err().expect("a format the camera lacks");
        assert!(format!("{err:#}").contains("does not offer NV12"), "{err:#}");
    });
}

#[test]
fn an_unwatched_webcam_decodes_nothing_and_wakes_with_fresh_frames() {
    fakecam::run("an_unwatched_webcam_decodes_nothing_and_wakes_with_fresh_frames", &[], |_cam| async move {
        let server = start(&["usb=v4l:42:320x240@15,format=yuyv"]).await.unwrap();
        let addr = server.addr;
        let idle = wait_for_camera(addr, "usb", Duration::from_secs(5), |c| c["status"] == "idle").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let still = camera_state(addr, "usb").await.unwrap();
        assert_eq!(still["frames_captured"], idle["frames_captured"], "nothing taken in while idle: {still}");
        assert_eq!(still["frames_encoded"], idle["frames_encoded"]);

        let asked = now_us();
        let r = get(addr, "/cameras/usb/snapshot").await.unwrap();
        let taken = framewire_core::mjpeg::parse_timestamp(r.header("x-timestamp").unwrap()).unwrap();
        assert!(taken >= asked, "a fresh frame, taken after the request");
        assert_eq!(decode_jpeg(&r.body).unwrap(), (320, 240));

        wait_for_camera(addr, "usb", Duration::from_secs(5), |c| c["status"] == "idle").await.unwrap();
        tokio::time::sleep(framewire::frames::FRESH).await;
        let asked = std::time::Instant::now();
        let (_, frames) = read_stream(addr, "/cameras/usb/stream", Duration::from_secs(1)).await.unwrap();
        let wait = frames[0].at - asked;
        eprintln!("first frame {wait:?} after the request");
        assert!(wait < Duration::from_millis(500), "first frame after {wait:?}");
    });
}
