package dev.sdeploy.demo

import android.content.Context
import android.graphics.Bitmap
import android.net.Uri
import android.os.Handler
import android.os.Looper
import dev.sdeploy.demo.core.TopK
import java.io.FileNotFoundException
import java.io.InputStream
import java.util.Locale
import java.util.concurrent.Executors

/** Something to classify: a bundled asset or a content:// URI from the photo picker or the camera. */
sealed class ImageSource(val title: String) {
    abstract fun open(context: Context): InputStream

    class Asset(private val name: String) : ImageSource(name) {
        override fun open(context: Context): InputStream = context.assets.open(name)
    }

    class Content(private val uri: Uri, title: String) : ImageSource(title) {
        override fun open(context: Context): InputStream =
            context.contentResolver.openInputStream(uri) ?: throw FileNotFoundException("cannot open $uri")
    }
}

/** What the screen shows for one classification. */
class Outcome(val bitmap: Bitmap?, val text: String)

/**
 * Runs model loading, decoding, preprocessing and inference on one background thread, for the
 * whole process (so a rotation neither reloads the model nor loses a result in flight), and
 * hands results to whichever activity is listening, on the main thread.
 */
object Engine {
    private val executor = Executors.newSingleThreadExecutor { Thread(it, "sdeploy-inference") }
    private val mainThread = Handler(Looper.getMainLooper())
    private var classifier: Classifier? = null // used on the executor thread only

    // Main thread only:
    var latest: Outcome? = null
        private set
    var pending = 0
        private set
    var listener: (() -> Unit)? = null

    fun submit(context: Context, source: ImageSource) {
        val app = context.applicationContext
        pending++
        listener?.invoke()
        executor.execute {
            val outcome = classify(app, source)
            mainThread.post {
                pending--
                latest = outcome
                listener?.invoke()
            }
        }
    }

    private fun classify(context: Context, source: ImageSource): Outcome = try {
        val decoded = ImageDecoding.decode { source.open(context) }
        val model = classifier ?: Classifier.load(context).also { classifier = it }
        val result = model.classify(decoded.image)
        val image = decoded.image
        val info = model.info
        val size = info.preprocess.imgSize
        val text = StringBuilder()
            .append(String.format(Locale.US, "%s · %s · %dx%d input\n", info.arch, info.format, size, size))
            .append(String.format(Locale.US, "%s · %dx%d", source.title, image.width, image.height))
            .append(if (decoded.sampleSize > 1) " (decoded at 1/${decoded.sampleSize} to fit in memory)" else "")
            .append("\n\n")
            .append(TopK.format(result.predictions))
            .append(String.format(Locale.US, "\n\ninference %.1f ms (preprocessing %.1f ms)", result.inferenceMs, result.preprocessMs))
            .toString()
        Outcome(ImageDecoding.displayBitmap(image), text)
    } catch (e: OutOfMemoryError) {
        Outcome(null, "${source.title}: not enough memory to decode this image")
    } catch (e: Exception) {
        Outcome(null, "${source.title}: ${e.message ?: e.toString()}")
    }
}
