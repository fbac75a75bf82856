import CoreGraphics
import XCTest

/// The crop geometry against Python's contract (Resources/ios_golden.json, from `preprocess.resize_and_crop`).
final class CropGeometryTests: XCTestCase {
    /// The region reproduces the contract's integer rounding: the positions agree within the contract filter's own
    /// discretisation (a scaled triangle sampled on the pixel grid centres each output within ~0.07 px of nominal).
    static let maxErrorPixels = 0.1

    /// Where cropping `roi` (normalised, lower-left origin) and scaling it to img_size centres each model pixel,
    /// in source pixels, and the size of one model pixel in source pixels.
    private func samplePositions(_ roi: CGRect, width: Int, height: Int, imgSize: Int) -> ([Double], [Double], Double) {
        let w = Double(width), h = Double(height), n = Double(imgSize)
        let left = Double(roi.minX) * w
        let top = (1 - Double(roi.minY) - Double(roi.height)) * h
        let xs = (0..<imgSize).map { left + (Double($0) + 0.5) * Double(roi.width) * w / n }
        let ys = (0..<imgSize).map { top + (Double($0) + 0.5) * Double(roi.height) * h / n }
        return (xs, ys, Double(roi.width) * w / n)
    }

    private func errorPixels(_ roi: CGRect, _ golden: IOSGolden.ROICase) -> Double {
        let (xs, ys, pixel) = samplePositions(roi, width: golden.width, height: golden.height, imgSize: golden.imgSize)
        XCTAssertEqual(xs.count, golden.contractX.count)
        XCTAssertEqual(ys.count, golden.contractY.count)
        var worst = 0.0
        for (index, interior) in golden.interiorX.enumerated() where interior {
            worst = max(worst, abs(xs[index] - golden.contractX[index]))
        }
        for (index, interior) in golden.interiorY.enumerated() where interior {
            worst = max(worst, abs(ys[index] - golden.contractY[index]))
        }
        return worst / pixel
    }

    func testRegionOfInterestSamplesWhatTheContractSamples() throws {
        let golden = try TestResources.decode(IOSGolden.self, from: "ios_golden.json")
        XCTAssertGreaterThan(golden.roi.count, 50)
        var controls = 0
        var roundingMatters = 0
        for roiCase in golden.roi {
            let label = "\(roiCase.width)x\(roiCase.height) at \(roiCase.imgSize)/\(roiCase.resizeSize)"
            let roi = CropGeometry.regionOfInterest(width: roiCase.width, height: roiCase.height,
                                                    imgSize: roiCase.imgSize, resizeSize: roiCase.resizeSize)
            XCTAssertGreaterThanOrEqual(roi.minX, 0, label)
            XCTAssertGreaterThanOrEqual(roi.minY, 0, label)
            XCTAssertLessThanOrEqual(roi.maxX, 1 + 1e-12, label)
            XCTAssertLessThanOrEqual(roi.maxY, 1 + 1e-12, label)
            XCTAssertLessThanOrEqual(errorPixels(roi, roiCase), Self.maxErrorPixels, label)
            // Python's own measure of the unrounded centred square (the previous formula) is what ours gives too.
            let w = Double(roiCase.width), h = Double(roiCase.height)
            let side = min(w, h) * Double(roiCase.imgSize) / Double(roiCase.resizeSize)
            let square = CGRect(x: (w - side) / 2 / w, y: (h - side) / 2 / h, width: side / w, height: side / h)
            XCTAssertEqual(errorPixels(square, roiCase), roiCase.centredSquareError, accuracy: 1e-6, label)
            if roiCase.centredSquareError > 0.25 {
                roundingMatters += 1
            }
            // Negative control: Vision's plain .centerCrop (the whole central square) is measurably different.
            if roiCase.centerCropError > 3 {
                let full = min(w, h)
                let centerCrop = CGRect(x: (w - full) / 2 / w, y: (h - full) / 2 / h, width: full / w, height: full / h)
                XCTAssertGreaterThan(errorPixels(centerCrop, roiCase), 3, label)
                controls += 1
            }
        }
        XCTAssertGreaterThan(controls, 10)
        XCTAssertGreaterThan(roundingMatters, 5)  // the contract's rounding is worth reproducing
    }

    /// The model copy's size rule is the one downsample_parity.py emulates (and measures).
    func testModelCopySizeIsTheEmulatedRule() throws {
        let golden = try TestResources.decode(IOSGolden.self, from: "ios_golden.json")
        XCTAssertEqual(golden.factor, CropGeometry.modelCopyFactor)
        XCTAssertEqual(golden.displayMax, CropGeometry.displayMaxPixelSize)
        XCTAssertFalse(golden.modelCopy.isEmpty)
        for copy in golden.modelCopy {
            XCTAssertEqual(CropGeometry.modelCopyMaxPixelSize(width: copy.width, height: copy.height,
                                                              resizeSize: copy.resizeSize),
                           copy.maxPixelSize, "\(copy.width)x\(copy.height) at resize \(copy.resizeSize)")
        }
    }
}
