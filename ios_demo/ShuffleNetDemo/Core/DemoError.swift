import Foundation

/// Every problem the app can meet, as one readable message: the app shows it and never crashes.
enum DemoError: LocalizedError, Equatable {
    /// A file that `sdeploy bundle --app ios` writes is missing from the app.
    case notBundled(String)
    /// model.json, labels.txt or selftest.json do not describe something this app can run.
    case badConfig(String)
    /// The picture cannot be decoded.
    case unreadableImage(String)
    /// The model ran but its output is not what model.json describes.
    case badOutput(String)

    var errorDescription: String? {
        switch self {
        case .notBundled(let file):
            return "\(file) is not in the app. From the repository root run\n"
                + "sdeploy bundle --app ios --arch v2_x0_5\n"
                + "then run xcodegen generate in ios_demo/ and build again."
        case .badConfig(let message), .unreadableImage(let message), .badOutput(let message):
            return message
        }
    }
}
