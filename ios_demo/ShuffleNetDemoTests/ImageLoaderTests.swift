import CoreGraphics
import ImageIO
import XCTest

/// The app's decode path (ImageIO thumbnail + sRGB redraw) on real files.
final class ImageLoaderTests: XCTestCase {
    /// golden.json's PNGs decode to exactly the pixels Python decodes (no colour shift, no resampling).
    func testGoldenPNGsDecodeToPythonsPixels() throws {
        let golden = try TestResources.golden()
        var checked = 0
        for image in golden.images {
            let rgba = try Base64.bytes(image.rgbaB64)
            XCTAssertEqual(rgba.count, image.width * image.height * 4, image.name)
            let opaque = stride(from: 3, to: rgba.count, by: 4).allSatisfy { rgba[$0] == 255 }
            guard opaque else { continue }  // transparent pixels: Python keeps the stored colour, the app composites (README)
            let png = try TestResources.data("golden/" + image.png)
            let prepared = try ImageLoader.prepare(png, resizeSize: 256)
            XCTAssertEqual(prepared.image.width, image.width, image.name)
            XCTAssertEqual(prepared.image.height, image.height, image.name)
            let rgb = try ImageLoader.rgbBytes(of: prepared.image)
            let expected = (0..<(image.width * image.height)).flatMap { rgba[4 * $0..<4 * $0 + 3] }
            XCTAssertEqual(rgb, expected, image.name)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3)
    }

    /// A large photo is never decoded at full size: the copy's longer side is 2048 px, and the EXIF orientation is
    /// applied.
    func testLargePhotoIsDownsampledAndUpright() throws {
        // 3000 x 2000 stored, EXIF orientation 6 (the stored top row is the picture's right side): 2000 x 3000 upright.
        let stored = try makeImage(width: 3000, height: 2000)
        let jpeg = try encode(stored, type: "public.jpeg", orientation: 6)
        let prepared = try ImageLoader.prepare(jpeg, resizeSize: 256)
        XCTAssertEqual(prepared.originalWidth, 2000)
        XCTAssertEqual(prepared.originalHeight, 3000)
        let image = prepared.image
        XCTAssertEqual(CropGeometry.modelCopyMaxPixelSize(width: 2000, height: 3000, resizeSize: 256), 2048)
        XCTAssertEqual(image.height, 2048, "upright (portrait), longer side 2048")
        XCTAssertEqual(Double(image.width), 2000.0 * 2048 / 3000, accuracy: 1)
        // The stored image's top half is red, its bottom half blue: upright, red is on the right.
        let rgb = try ImageLoader.rgbBytes(of: image)
        let row = image.height / 2
        let left = 3 * (row * image.width + image.width / 8)
        let right = 3 * (row * image.width + image.width * 7 / 8)
        XCTAssertGreaterThan(rgb[right], 200, "red on the right")
        XCTAssertLessThan(rgb[right + 2], 60)
        XCTAssertGreaterThan(rgb[left + 2], 200, "blue on the left")
        XCTAssertLessThan(rgb[left], 60)
    }

    /// A panorama keeps a shorter side of at least 2 x resize_size.
    func testPanoramaKeepsEnoughPixels() throws {
        let png = try encode(makeImage(width: 9000, height: 700), type: "public.png", orientation: 1)
        let prepared = try ImageLoader.prepare(png, resizeSize: 256)
        XCTAssertEqual(CropGeometry.modelCopyMaxPixelSize(width: 9000, height: 700, resizeSize: 256), 6583)
        XCTAssertEqual(prepared.image.width, 6583)
        XCTAssertGreaterThanOrEqual(prepared.image.height, 2 * 256)
    }

    func testSmallPictureIsNotResized() throws {
        let png = try encode(makeImage(width: 300, height: 200), type: "public.png", orientation: 1)
        let prepared = try ImageLoader.prepare(png, resizeSize: 256)
        XCTAssertEqual(prepared.image.width, 300)
        XCTAssertEqual(prepared.image.height, 200)
    }

    func testNotAnImage() {
        XCTAssertThrowsError(try ImageLoader.prepare(Data("not an image".utf8), resizeSize: 256))
    }

    /// Top half red, bottom half blue, sRGB.
    private func makeImage(width: Int, height: Int) throws -> CGImage {
        let space = try XCTUnwrap(CGColorSpace(name: CGColorSpace.sRGB))
        let context = try XCTUnwrap(CGContext(data: nil, width: width, height: height, bitsPerComponent: 8, bytesPerRow: 0,
                                              space: space, bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue))
        // Core Graphics' origin is the bottom-left corner: the top half is y >= height / 2.
        context.setFillColor(CGColor(red: 0, green: 0, blue: 1, alpha: 1))
        context.fill(CGRect(x: 0, y: 0, width: width, height: height / 2))
        context.setFillColor(CGColor(red: 1, green: 0, blue: 0, alpha: 1))
        context.fill(CGRect(x: 0, y: height / 2, width: width, height: height - height / 2))
        return try XCTUnwrap(context.makeImage())
    }

    private func encode(_ image: CGImage, type: String, orientation: Int) throws -> Data {
        let data = NSMutableData()
        let destination = try XCTUnwrap(CGImageDestinationCreateWithData(data as CFMutableData, type as CFString, 1, nil))
        let properties: [CFString: Any] = [kCGImagePropertyOrientation: orientation,
                                           kCGImageDestinationLossyCompressionQuality: 0.95]
        CGImageDestinationAddImage(destination, image, properties as CFDictionary)
        XCTAssertTrue(CGImageDestinationFinalize(destination))
        return data as Data
    }
}
