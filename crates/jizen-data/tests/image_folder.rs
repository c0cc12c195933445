//! Image folders: tiny PNG and JPEG files written by the tests, grey and RGB, good and broken.

use std::path::{Path, PathBuf};

use jizen_data::{load_image_folder, Dataset, ImageFolderOptions};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-imgdir-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `w x h` RGB PNG whose pixel (x, y) is (r, x, y).
fn rgb_png(path: &Path, w: u32, h: u32, r: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([r, x as u8, y as u8])).save(path).unwrap();
}

#[test]
fn classes_sorted_pixels_channel_major() {
    let root = temp_dir("good");
    rgb_png(&root.join("zebra/b.png"), 3, 2, 30);
    rgb_png(&root.join("zebra/a.PNG"), 3, 2, 20);
    rgb_png(&root.join("ant/x.png"), 3, 2, 10);
    std::fs::write(root.join("ant/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("stray.png"), "files at the root are not classes").unwrap();
    let set = load_image_folder(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(set.classes, vec!["ant", "zebra"]);
    assert_eq!(set.labels, vec![0, 1, 1]);
    assert_eq!((set.channels, set.height, set.width), (3, 2, 3));
    // Image 1 is zebra/a.PNG (sorted by file name): red plane all 20, green = x, blue = y.
    assert_eq!(set.image(1), &[20, 20, 20, 20, 20, 20, 0, 1, 2, 0, 1, 2, 0, 0, 0, 1, 1, 1]);
    let (x, y) = set.batch(&[2, 0]).unwrap();
    assert_eq!(x.shape(), &[2, 3, 2, 3]);
    assert_eq!(x.to_vec::<f32>().unwrap()[0], 30.0 / 255.0);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 0]);
    // One channel: converted to grey.
    let grey = load_image_folder(&root, &ImageFolderOptions { channels: 1, resize: None }).unwrap();
    assert_eq!((grey.channels, grey.pixels.len()), (1, 3 * 6));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn grey_and_jpeg_inputs_convert_to_rgb() {
    let root = temp_dir("mixed");
    std::fs::create_dir_all(root.join("a")).unwrap();
    image::GrayImage::from_pixel(4, 4, image::Luma([200])).save(root.join("a/g.png")).unwrap();
    image::RgbImage::from_pixel(4, 4, image::Rgb([0, 0, 255])).save(root.join("a/j.jpg")).unwrap();
    let set = load_image_folder(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(set.len(), 2);
    // The grey PNG becomes three equal planes.
    assert!(set.image(0).iter().all(|&p| p == 200));
    // The JPEG is lossy: blue stays far above red.
    let j = set.image(1);
    assert!(j[32] > 200 && j[0] < 60, "{j:?}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn sizes_must_agree_unless_resized() {
    let root = temp_dir("sizes");
    rgb_png(&root.join("a/1.png"), 4, 4, 0);
    rgb_png(&root.join("b/2.png"), 5, 3, 0);
    let e = load_image_folder(&root, &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("2.png") && e.contains("is 5x3") && e.contains("1.png is 4x4"), "{e}");
    let set = load_image_folder(&root, &ImageFolderOptions { channels: 3, resize: Some((2, 6)) }).unwrap();
    assert_eq!((set.len(), set.height, set.width), (2, 6, 2));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn broken_folders_are_clear_errors() {
    let root = temp_dir("broken");
    let e = load_image_folder(&root, &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no class folders"), "{e}");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let e = load_image_folder(&root, &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("has no images"), "{e}");
    std::fs::write(root.join("empty/bad.png"), b"\x89PNG but not really").unwrap();
    let e = load_image_folder(&root, &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("bad.png") && e.contains("cannot decode"), "{e}");
    let e = load_image_folder(&root, &ImageFolderOptions { channels: 4, resize: None }).unwrap_err().to_string();
    assert!(e.contains("4 channels requested"), "{e}");
    let e = load_image_folder(&root.join("nope"), &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("cannot list"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}
